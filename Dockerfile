# One image for every component: `shop <component>` (see compose.yaml).
#
# Build stage: the whole workspace, `dist` profile (release with whole-program
# optimisation, see Cargo.toml), only the `shop` binary.
FROM rust:1-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --profile dist --locked -p shop --bin shop --features otlp \
    && install -D -m 0755 target/dist/shop /out/shop

# Runtime stage: a slim Debian with the binary, curl for the health checks,
# and an unprivileged user owning /data (where the volumes are mounted).
FROM debian:bookworm-slim AS runtime
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin shop \
    && mkdir -p /data \
    && chown shop:shop /data
COPY --from=build /out/shop /usr/local/bin/shop
USER shop
WORKDIR /data
VOLUME ["/data"]
ENV SHOP_LOG_FORMAT=json
ENTRYPOINT ["/usr/local/bin/shop"]
CMD ["--help"]
