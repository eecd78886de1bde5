# deckhand's container image: a small runtime with CA certificates and glibc, deckhand as the
# entrypoint, running as an unprivileged user (uid 65532).
#
#   docker build -t deckhand .
#
# The build stage compiles from source. A binary placed at prebuilt/deckhand in the context
# (the release workflow does this) is used as it is instead. Both base images are arguments, so
# a mirror or a pinned digest can be used.
ARG BUILD_IMAGE=rust:1-slim-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot

FROM ${BUILD_IMAGE} AS build
WORKDIR /src
COPY . .
RUN mkdir -p /out \
 && if [ -x prebuilt/deckhand ]; then cp prebuilt/deckhand /out/deckhand; \
    else cargo build --release --locked && cp target/release/deckhand /out/deckhand; fi

FROM ${RUNTIME_IMAGE} AS runtime
COPY --from=build /out/deckhand /usr/local/bin/deckhand
# Building images needs the Docker socket: mount it and add its group, e.g.
#   docker run -v /var/run/docker.sock:/var/run/docker.sock \
#     --group-add "$(stat -c %g /var/run/docker.sock)" deckhand deploy ...
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/deckhand"]
CMD ["--help"]
