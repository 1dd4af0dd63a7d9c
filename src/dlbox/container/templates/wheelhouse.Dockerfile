# Wheels from --wheelhouse: they stay in this stage; the image gets only the installed venv.
COPY {{context_wheelhouse}}/ /opt/dlbox/wheelhouse/
