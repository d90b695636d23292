# cnnkeras on CPU (TensorFlow backend): the image behind docker-compose.yml's services,
# with the MLflow server and its basic-auth app (the `server` extra).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY cnnkeras cnnkeras
COPY dashboards dashboards
RUN pip install --no-cache-dir -e '.[server]'
# Experiments are not built in: docker-compose.yml mounts ./experiments (the team's own files).
COPY docker docker
ENV TF_CPP_MIN_LOG_LEVEL=2
ENTRYPOINT ["cnnkeras"]
