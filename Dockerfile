# reclambot in a container: docker build -t reclambot . && docker run -d \
#   -v /srv/reclambot:/data -e RECLAMBOT_IMAP_PASSWORD=... -e RECLAMBOT_SMTP_PASSWORD=... reclambot
# /data holds config.toml (relative paths in it are relative to /data), the SQLite register
# and the dossiers. The web form runs from the same image beside it, without the mailbox
# password ([web] listen = "0.0.0.0:8080" in config.toml; docs/web.md):
#   docker run -d -v /srv/reclambot:/data -p 127.0.0.1:8080:8080 \
#     -e RECLAMBOT_SMTP_PASSWORD=... reclambot serve
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
EXPOSE 8080
WORKDIR /data
ENTRYPOINT ["reclambot"]
CMD ["run"]
