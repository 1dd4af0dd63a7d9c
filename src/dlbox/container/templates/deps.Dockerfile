
# ---- deps: exactly the versions pinned in dlbox.lock ----------------------------------------
FROM system AS deps
COPY {{context_lock}} /opt/dlbox/requirements.lock.txt
