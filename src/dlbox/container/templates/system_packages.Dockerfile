# The project's apt.txt: Debian packages its requirements need to build or run.
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        {{system_packages}} \
    && rm -rf /var/lib/apt/lists/*
