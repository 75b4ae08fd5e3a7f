# A dialgate node: the release binary built on the host (Debian 12, glibc
# 2.36), libopus, and the prompts. Built by deploy/docker/build-images.sh,
# which builds the binary first and picks BASE_IMAGE: Docker Hub's
# debian:bookworm-slim where a registry is reachable, else an image made
# from a local Debian root filesystem (debootstrap).
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends libopus0 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --home-dir /var/lib/dialgate --create-home dialgate \
 && mkdir -p /var/lib/dialgate/shared \
 && chown dialgate /var/lib/dialgate/shared
COPY target/release/dialgate /usr/local/bin/dialgate
COPY prompts /usr/share/dialgate/prompts
USER dialgate
WORKDIR /var/lib/dialgate
ENTRYPOINT ["/usr/local/bin/dialgate"]
CMD ["serve", "--demo", "--prompts", "/usr/share/dialgate/prompts"]
