# syntax=docker/dockerfile:1
# isr-proxy in a small image: built with the Rust toolchain, run from distroless (glibc, CA certificates, no
# shell) as a non-root user.
#
#   docker build -t isr-proxy .
#   docker run --rm -p 3000:3000 -v "$PWD/isr-proxy.toml:/etc/isr-proxy/isr-proxy.toml:ro" \
#     -e ISR_REVALIDATE_TOKEN=change-me isr-proxy
#
# The config must set `listen = "0.0.0.0:3000"` and `[admin] listen = "0.0.0.0:9091"` (or 127.0.0.1:9091, which
# the health check below still reaches from inside the container).

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY . .
# The registry and target directory are cache mounts, so a rebuild only compiles what changed.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin isr-proxy \
    && install -D -m 0755 target/release/isr-proxy /out/isr-proxy \
    && mkdir -p /out/cache

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/isr-proxy /usr/local/bin/isr-proxy
# cache.dir, if the config sets one (`dir = "/var/cache/isr-proxy"`): owned by the runtime user, so a volume
# mounted here starts writable.
COPY --from=build --chown=65532:65532 /out/cache /var/cache/isr-proxy
VOLUME ["/var/cache/isr-proxy"]
EXPOSE 3000 9091
# 65532: distroless's `nonroot` user.
USER 65532:65532
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["/usr/local/bin/isr-proxy", "health", "--admin-url", "http://127.0.0.1:9091"]
ENTRYPOINT ["/usr/local/bin/isr-proxy", "--config", "/etc/isr-proxy/isr-proxy.toml", "--log-format", "json"]
