# The project itself, without dependencies (they are all in the layer above).
RUN cp -r {{workdir}} /tmp/dlbox-project \
    && pip install --no-deps --no-build-isolation --no-index /tmp/dlbox-project \
    && rm -rf /tmp/dlbox-project
