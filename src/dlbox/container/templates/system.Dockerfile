
# ---- system: Python, tini, the non-root user (the image starts here: no venv yet) -----------
FROM {{base_image}} AS system
ENV LANG=C.UTF-8 \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore
# Install only what the base lacks (nothing on dlbox-base, so an offline build needs no apt).
RUN set -eu; \
    missing=""; \
    command -v python3 >/dev/null 2>&1 || missing="$missing python3"; \
    python3 -c "import ensurepip, venv" >/dev/null 2>&1 || missing="$missing python3-venv"; \
    [ -x {{tini}} ] || missing="$missing tini"; \
    if [ -n "$missing" ]; then \
        apt-get update; \
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
            $missing ca-certificates; \
        rm -rf /var/lib/apt/lists/*; \
    fi; \
    getent group {{gid}} >/dev/null || groupadd --gid {{gid}} {{user}}; \
    getent passwd {{uid}} >/dev/null || useradd --uid {{uid}} --gid {{gid}} --no-create-home \
        --home-dir {{home}} --shell /bin/bash {{user}}; \
    mkdir -p {{home}} {{workdir}} {{data_dir}}; \
    chown {{uid}}:{{gid}} {{home}} {{workdir}} {{data_dir}}
ENV VIRTUAL_ENV={{venv}} \
    PATH={{venv}}/bin:$PATH
