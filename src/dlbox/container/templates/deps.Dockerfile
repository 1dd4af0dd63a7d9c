
# ---- deps: exactly the versions pinned in dlbox.lock ----------------------------------------
FROM venv AS deps
COPY {{context_lock}} /opt/dlbox/requirements.lock.txt
