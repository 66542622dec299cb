# The worker image that deploy/kubernetes_job.yaml names: CUDA, PyTorch, this project with its
# PostgreSQL extra, run as an unprivileged user. Build and push it from the repository root:
#
#   docker build -t registry.example.org/redistill-study:latest .
#   docker push registry.example.org/redistill-study:latest
#
# Then every pod runs `redistill-study run …` against the shared PostgreSQL and MLflow stores.
FROM pytorch/pytorch:2.4.1-cuda12.1-cudnn9-runtime

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /opt/redistill-study
COPY pyproject.toml README.md ./
COPY redistill_study ./redistill_study
COPY studies ./studies
COPY dashboards ./dashboards
# The package reaches studies/ and dashboards/ through links inside redistill_study/.
RUN pip install ".[postgres]" \
    && useradd --create-home --uid 1000 redistill \
    && mkdir -p /shared /opt/redistill-study/data \
    && chown redistill /shared

USER redistill
WORKDIR /home/redistill
ENTRYPOINT ["redistill-study"]
CMD ["--help"]
