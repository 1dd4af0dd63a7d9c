RUN pip install --no-deps{{pip_options}} \
        -r /opt/dlbox/requirements.lock.txt \
    && pip check
LABEL dlbox.stage="deps"
