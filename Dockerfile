FROM python:3.11-slim
WORKDIR /app
ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
COPY pyproject.toml README.md ./
COPY asahi_project asahi_project
COPY governance governance
COPY inference inference
COPY caching caching
COPY routing routing
COPY analytics analytics
COPY console console
COPY batching batching
COPY templates templates
COPY static static
# The landing page quotes its savings figures from the measured benchmarks.
COPY docs/benchmarks.md docs/benchmarks.md
COPY manage.py ./
# ASAHI_MODEL_CACHE inside the image: the embedder's ONNX export is made at build time, not on
# the first request of every container.
ENV ASAHI_MODEL_CACHE=/app/.models
# collectstatic needs no secrets; a failure must fail the build (the console would lose its CSS/JS).
RUN pip install --no-cache-dir . && python manage.py collectstatic --noinput -v 0
RUN python -c "from caching.semantic.embedders import get_local_embedder as g; g().embed(['warm'])"
EXPOSE 8000
CMD ["uvicorn", "asahi_project.asgi:application", "--host", "0.0.0.0", "--port", "8000", "--no-proxy-headers"]
