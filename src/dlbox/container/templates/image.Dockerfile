
# ---- image: system, the venv exactly as deps left it, then the code -------------------------
FROM system
COPY --from=deps {{venv}} {{venv}}
ENV HOME={{home}} \
    DLBOX_DATA={{data_dir}}{{extra_env}}
WORKDIR {{workdir}}
COPY --chown={{uid}}:{{gid}} {{context_project}}/ {{workdir}}/
