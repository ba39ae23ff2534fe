# syntax=docker/dockerfile:1
#
# The `trellis` image: the CLI (hosts, wadm, app deploy, ...), the example components signed
# at build time, and the example wadm manifests.
#
#   docker build -t trellis:dev .
#   docker run --rm trellis:dev --help
#
# Layout of the runtime image:
#   /usr/local/bin/trellis                  the binary (ENTRYPOINT)
#   /opt/trellis/components/NAME.wasm       each example component (examples/*/, not the test
#                                           fixtures), signed; manifests refer to them as
#                                           file:///opt/trellis/components/NAME.wasm
#   /opt/trellis/keys/account.pub           the account public key (A...) that signed them: hosts
#                                           trust it with --trusted-issuer "$(cat ...)"
#   /opt/trellis/examples/NAME/wadm*.yaml   the example manifests (e.g. orders/wadm.yaml)
#   /var/lib/trellis                        HOME and compiled-artifact cache (TRELLIS_CACHE_DIR)
#
# The signing key is made during the build and its seed never leaves the builder stage: every
# build has its own key. To run components signed with your own key, sign them with
# `trellis claims sign` and add your account key to TRELLIS_TRUSTED_ISSUERS.

ARG RUST_IMAGE=rust:1.95-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

FROM ${RUST_IMAGE} AS builder
# The interfaces every example component is granted when it is signed (`ns:pkg` grants every
# interface of the package). wasi:cli, clocks, io, random, http/types need no grant.
ARG COMPONENT_GRANTS=wasi:config,wasi:logging,wasi:keyvalue,wasi:sql
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
RUN rustup target add wasm32-wasip2
WORKDIR /src
COPY . .

# The trellis binary (cargo caches live in BuildKit cache mounts, so the binary is copied out
# of target/ in the same step).
RUN --mount=type=cache,id=trellis-cargo-registry,target=/usr/local/cargo/registry \
    --mount=type=cache,id=trellis-cargo-git,target=/usr/local/cargo/git \
    --mount=type=cache,id=trellis-target,target=/src/target \
    cargo build --release --locked -p trellis-cli \
 && install -D -m 0755 target/release/trellis /out/bin/trellis

# The example components: every examples/NAME/ crate that is a member of the examples
# workspace (wasm32-wasip2), not the test fixtures; then sign each one.
# ($packages is split on purpose: one `-p NAME` per package.)
# hadolint ignore=SC2086
RUN --mount=type=cache,id=trellis-cargo-registry,target=/usr/local/cargo/registry \
    --mount=type=cache,id=trellis-cargo-git,target=/usr/local/cargo/git \
    --mount=type=cache,id=trellis-examples-target,target=/src/examples/target \
    set -eu; \
    packages=""; \
    for manifest in examples/*/Cargo.toml; do \
      dir=$(basename "$(dirname "$manifest")"); \
      grep -q "\"$dir\"" examples/Cargo.toml || continue; \
      name=$(sed -n '/^name *=/{s/^name *= *"\(.*\)"/\1/p;q}' "$manifest"); \
      packages="$packages $name"; \
    done; \
    test -n "$packages"; \
    echo "example components:$packages"; \
    cargo build --release --locked --target wasm32-wasip2 \
      --manifest-path examples/Cargo.toml $(printf -- ' -p %s' $packages); \
    mkdir -p /out/opt/components /out/opt/keys /out/opt/examples /tmp/unsigned; \
    for name in $packages; do \
      file=${name//-/_}.wasm; \
      cp "examples/target/wasm32-wasip2/release/$file" "/tmp/unsigned/$file"; \
    done; \
    /out/bin/trellis keys gen account > /tmp/account.key; \
    sed -n 's/^seed: //p' /tmp/account.key > /tmp/account.seed; \
    sed -n 's/^public: //p' /tmp/account.key > /out/opt/keys/account.pub; \
    grep -q '^A' /out/opt/keys/account.pub; \
    for unsigned in /tmp/unsigned/*.wasm; do \
      file=$(basename "$unsigned"); \
      TRELLIS_GRANTS="$COMPONENT_GRANTS" /out/bin/trellis claims sign "$unsigned" \
        --issuer @/tmp/account.seed --name "$(basename "${file//_/-}" .wasm)" \
        -o "/out/opt/components/$file"; \
      /out/bin/trellis claims inspect "/out/opt/components/$file" \
        --trusted-issuer "$(cat /out/opt/keys/account.pub)" > /dev/null; \
    done; \
    rm -rf /tmp/account.key /tmp/account.seed /tmp/unsigned; \
    for manifest in examples/*/wadm*.yaml; do \
      [ -e "$manifest" ] || continue; \
      install -D -m 0644 "$manifest" "/out/opt/$manifest"; \
    done; \
    find /out -type f

FROM ${RUNTIME_IMAGE}
# ca-certificates: TLS to NATS (tls://) and to databases with public certificates.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 trellis \
 && useradd --system --uid 10001 --gid trellis --home-dir /var/lib/trellis --create-home \
      --shell /usr/sbin/nologin trellis \
 && mkdir -p /var/lib/trellis/cache \
 && chown -R trellis:trellis /var/lib/trellis

COPY --from=builder /out/bin/trellis /usr/local/bin/trellis
COPY --from=builder /out/opt/ /opt/trellis/

LABEL org.opencontainers.image.title="trellis" \
      org.opencontainers.image.description="Trellis: a distributed WebAssembly host (hosts, wadm, CLI) with the example components" \
      org.opencontainers.image.licenses="Apache-2.0"

ENV TRELLIS_CACHE_DIR=/var/lib/trellis/cache
USER 10001:10001
WORKDIR /var/lib/trellis
ENTRYPOINT ["trellis"]
CMD ["--help"]
