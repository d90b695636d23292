# cnnkeras on CPU (TensorFlow backend): the image behind docker-compose.yml's services.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY cnnkeras cnnkeras
COPY dashboards dashboards
RUN pip install --no-cache-dir -e . 
COPY experiments experiments
ENV TF_CPP_MIN_LOG_LEVEL=2
ENTRYPOINT ["cnnkeras"]
