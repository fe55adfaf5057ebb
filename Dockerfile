# syntax=docker/dockerfile:1
# The payment-engine binary in a small Debian image (compose.yaml builds it as `engine`).

FROM rust:1-bookworm AS builder
# MariaDB client headers for Diesel's mysql backend; rdkafka builds its bundled librdkafka with
# ./configure and make, so the C toolchain (build-essential) and zlib are all it needs, no cmake.
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        libmariadb-dev-compat pkg-config build-essential zlib1g-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /build
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY migrations ./migrations
# Cache mounts keep the registry and the compiled dependencies between builds; the binary is
# copied out of the cached target directory in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/build/target \
    cargo build --release --locked --bin payment-engine \
    && cp target/release/payment-engine /usr/local/bin/payment-engine

FROM debian:bookworm-slim
# libmariadb3 brings the client plugins too (caching_sha2_password for MySQL 8); curl serves
# the health check.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libmariadb3 ca-certificates curl \
    && rm -rf /var/lib/apt/lists/*
RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin payment-engine
COPY --from=builder /usr/local/bin/payment-engine /usr/local/bin/payment-engine
USER payment-engine
ENV BIND_ADDR=0.0.0.0:8080 \
    LOG_FORMAT=json
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD curl -fsS -o /dev/null http://127.0.0.1:8080/health/ready || exit 1
ENTRYPOINT ["payment-engine"]
CMD ["serve"]
