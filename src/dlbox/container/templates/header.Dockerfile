# Dockerfile for {{project}}, rendered by dlbox {{dlbox_version}}. Do not edit: re-render with
#   dlbox image build --dry-run --{{device}}   (with the build's other flags, such as --driver)
# {{framework_line}}
# Stages: system (Python, tini, user) -> venv -> deps (pinned requirements from dlbox.lock)
#         -> image (system + the venv of deps, then the code: a code change rebuilds only
#         the last layers).
