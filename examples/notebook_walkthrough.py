# %% [markdown]
# # RipStream in a notebook
#
# What a Jupyter user does, as a script: every `# %%` block below is one notebook cell
# (open this file with Jupytext, or VS Code's "Run Cell", to get the notebook). Nothing
# needs an event loop, so each cell simply blocks until its work is done, and `tqdm.auto`
# draws widgets in Jupyter and text bars in a terminal.
#
# Run as a script:
#
#     python examples/notebook_walkthrough.py [--base-url URL] [--output DIR]

# %%
from contextlib import ExitStack
from urllib.parse import quote

from _local_server import album_files, output_directory, parse_args, service, sha256_of

from ripstream.downloader import DownloadConfig, ProgressTracker, TqdmProgress
from ripstream.sources.http import HttpDownloader

# In Jupyter the kernel gets arguments of its own: lenient parsing ignores them.
args = parse_args("Download an album with progress bars, as in a notebook.", lenient=True)

# A notebook has no single `with` block around everything: an ExitStack holds the local
# server and the output folder open until the last cell closes it.
stack = ExitStack()
base_url = stack.enter_context(service(args.base_url))
output = stack.enter_context(output_directory(args.output))
print(f"server: {base_url}\noutput: {output}")

# %% [markdown]
# ## Describe what to download
#
# The built-in `http` source takes plain URLs; `get_download_info` names each file after
# its URL.

# %%
album = album_files()
urls = [base_url + quote(item.path) for item in album]

config = DownloadConfig(download_directory=output / "Demo Album", max_concurrent_downloads=4)
tracker = ProgressTracker()
downloader = HttpDownloader(config, progress_tracker=tracker)
contents = [downloader.get_download_info(url) for url in urls]
for content in contents:
    print(content.title)

# %% [markdown]
# ## Download them all, with progress bars
#
# `TqdmProgress` is a progress callback: one overall bar, one bar per running download.

# %%
with TqdmProgress(total_files=len(contents)) as bars:
    tracker.add_callback(bars)
    results = downloader.download_many(contents)
tracker.remove_callback(bars)  # the bars are closed; later cells draw their own

# %% [markdown]
# ## Look at the results

# %%
for result in results:
    name = result.file_path.name if result.file_path else result.content_id
    print(
        f"{result.status.value:<9} {result.bytes_downloaded:>7} B  {result.elapsed:5.2f}s  {name}"
    )

# %% [markdown]
# ## Check every file against what the server sent

# %%
served = {item.path.rsplit("/", 1)[-1]: item.sha256 for item in album}
verified = [
    result.file_path.name
    for result in results
    if result.file_path and sha256_of(result.file_path) == served[result.file_path.name]
]
print(f"{len(verified)}/{len(album)} files verified by sha256")

# %%
downloader.close()
stack.close()  # stop the local server (and remove the temporary folder, if one was made)
if len(verified) != len(album):
    raise SystemExit(1)
