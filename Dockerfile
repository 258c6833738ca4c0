# herald in a container: a release build, then a small runtime image.
#   docker build -t herald .
#   docker run -p 4222:4222 -p 6379:6379 -p 1883:1883 -p 8080:8080 -v herald-data:/data herald
# (Not built in this project's CI: its machines have no container runtime.)

FROM rust:1-bookworm AS build
# `docker build --build-arg HERALD_BUILD_COMMIT=$(git rev-parse --short=12 HEAD) .`
# puts the commit in `herald --version` (.git is not copied in).
ARG HERALD_BUILD_COMMIT=""
WORKDIR /src
COPY . .
RUN HERALD_BUILD_COMMIT="$HERALD_BUILD_COMMIT" cargo build --release -p herald-server --locked \
 && strip target/release/herald

FROM debian:bookworm-slim
RUN useradd --system --uid 10001 --home /data --shell /usr/sbin/nologin herald \
 && mkdir -p /data && chown herald:herald /data
COPY --from=build /src/target/release/herald /usr/local/bin/herald
USER herald
VOLUME ["/data"]
# NATS, Redis, MQTT, web (pages, REST, WebSocket, SSE, /metrics, /healthz).
EXPOSE 4222 6379 1883 8080
ENV HERALD_DATA_DIR=/data HERALD_LOG_FORMAT=json
# `herald health` asks /healthz over plain HTTP: with [tls] on, point it at a
# plain `--monitor 127.0.0.1:8222` port instead (`--addr 127.0.0.1:8222`).
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
  CMD ["herald", "health", "--addr", "127.0.0.1:8080"]
ENTRYPOINT ["herald"]
