# The operator image: the bertsweep package and its light dependencies, no torch, no transformers
# (those belong to the trainer image, trainer_image/Dockerfile).
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator ./operator
COPY trainer_image/bertsweep_trainer/__init__.py ./trainer_image/bertsweep_trainer/__init__.py
RUN pip wheel --no-cache-dir --wheel-dir /wheels ".[operator]"

FROM python:3.11-slim
RUN useradd --uid 10001 --no-create-home --shell /usr/sbin/nologin bertsweep
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels \
    && python -c "import importlib.util as u; assert u.find_spec('torch') is None"
USER 10001
EXPOSE 8080
ENTRYPOINT ["bertsweep", "operator"]
