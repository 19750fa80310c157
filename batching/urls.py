from django.urls import path

from batching import api

urlpatterns = [
    path("v1/files", api.files, name="files"),
    path("v1/files/<str:file_id>", api.file_detail, name="file-detail"),
    path("v1/files/<str:file_id>/content", api.file_content, name="file-content"),
    path("v1/batches", api.batches, name="batches"),
    path("v1/batches/<str:batch_id>", api.batch_detail, name="batch-detail"),
    path("v1/batches/<str:batch_id>/cancel", api.batch_cancel, name="batch-cancel"),
    path("infer", api.infer, name="infer-deferrable"),
    path("infer/jobs/<str:job_id>", api.infer_job, name="infer-job"),
]
