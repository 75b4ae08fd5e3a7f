# Kamailio 5.6 from Debian with the dispatcher config of deploy/kamailio.
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends kamailio \
 && rm -rf /var/lib/apt/lists/*
COPY deploy/kamailio/kamailio.cfg deploy/kamailio/dispatcher.list /etc/kamailio/
RUN kamailio -c -f /etc/kamailio/kamailio.cfg
ENTRYPOINT ["kamailio", "-f", "/etc/kamailio/kamailio.cfg", "-DD", "-E", "-m", "256", "-M", "16"]
