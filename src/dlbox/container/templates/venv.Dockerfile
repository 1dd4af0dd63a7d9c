
# ---- venv: an empty venv, for the lock's resolution and for deps to fill --------------------
# The image copies its venv from deps alone: a venv of its own underneath would bring back
# what deps replaced (an old setuptools' files beside the pinned one), and weigh twice.
FROM system AS venv
RUN python3 -m venv {{venv}}
