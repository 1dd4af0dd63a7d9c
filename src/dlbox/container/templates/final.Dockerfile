USER {{uid}}:{{gid}}
# tini is PID 1: it forwards `docker stop`'s SIGTERM to the command and reaps zombies.
ENTRYPOINT ["{{tini}}", "--"]
CMD {{command}}
LABEL {{labels}}
