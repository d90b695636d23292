CREATE DATABASE mlflow OWNER cnnkeras;
