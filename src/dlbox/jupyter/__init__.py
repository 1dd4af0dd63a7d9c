"""`dlbox notebook`: JupyterLab on this host or in the dlbox image, with a fresh token.

settings   pure: the launch's settings, token, URLs, Jupyter config (no I/O)
secrets_dir  the launch's private folder: 0600 token file, config, log
probe      HTTP checks: wait until the server answers, check it wants the token
server     the local server (a child process)
container  the server inside the dlbox image (through dlbox.container.engine)
notebooks  where first_pytorch_classifier.ipynb lives, and whether Jupyter can open it
kernel     what the notebook imports, in its kernel: settings checks, synthetic data, ...
progress   the notebook's training progress bar
"""

from dlbox.jupyter.settings import NOTEBOOK_NAME, NotebookSettings, new_token

__all__ = ["NOTEBOOK_NAME", "NotebookSettings", "new_token"]
