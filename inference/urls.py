from django.urls import path

from inference import api

urlpatterns = [
    path("v1/chat/completions", api.chat_completions, name="chat-completions"),
    path("v1/embeddings", api.embeddings, name="embeddings"),
    path("v1/models", api.v1_models, name="v1-models"),
    path("models", api.models, name="models"),
    path("infer", api.infer, name="infer"),
    path("feedback", api.feedback, name="feedback"),
]
