# reclambot in a container: docker build -t reclambot . && docker run -d \
#   -v /srv/reclambot:/data -e RECLAMBOT_IMAP_PASSWORD=... -e RECLAMBOT_SMTP_PASSWORD=... reclambot
# /data holds config.toml (relative paths in it are relative to /data), the SQLite register
# and the dossiers.
FROM python:3.11-slim

RUN useradd --system --create-home --home-dir /home/reclambot reclambot \
    && mkdir /data && chown reclambot:reclambot /data
WORKDIR /app
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY templates ./templates
COPY rules ./rules
RUN pip install --no-cache-dir ".[postgresql]"

USER reclambot
ENV RECLAMBOT_CONFIG=/data/config.toml
VOLUME ["/data"]
WORKDIR /data
ENTRYPOINT ["reclambot"]
CMD ["run"]
