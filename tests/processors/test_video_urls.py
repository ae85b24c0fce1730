"""Videos from http(s) URLs, served by a real server on 127.0.0.1 that the tests start: a good URL gives the same
frames as the file; a missing video, a port nobody listens on, a server that does not answer in time and a certificate
nobody vouches for give errors that name the URL and the cause."""

import functools
import http.server
import socket
import ssl
import threading

import numpy as np
import pytest
import torch
from processor_testing import TINY_VIDEO_PROCESSOR

from storm_hf.processors.video_decoding import VideoDownloadError, VideoReader
from storm_hf.processors.video_processing_storm import StormVideoProcessor

SPARSE = [0, 7, 33, 59]


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Serves the folder; a path under /slow/ is answered only once the test is over."""

    def do_GET(self):
        if self.path.startswith("/slow/"):
            self.server.release.wait(timeout=30)
        else:
            super().do_GET()

    def log_message(self, *args):
        pass


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):  # refused handshakes (untrusted certificate) are expected
        pass


@pytest.fixture(scope="module")
def serve(make_video):
    """serve(ssl_context=None) -> base URL of a server for the folder holding `make_video`'s videos."""
    servers = []

    def start(ssl_context=None):
        folder = make_video(60).parent
        server = _Server(("127.0.0.1", 0), functools.partial(_Handler, directory=str(folder)))
        server.release = threading.Event()
        if ssl_context is not None:
            server.socket = ssl_context.wrap_socket(server.socket, server_side=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"{'https' if ssl_context else 'http'}://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.release.set()
        server.shutdown()
        server.server_close()


def test_a_video_url_gives_the_file_s_frames(serve, make_video):
    path = make_video(60)
    url = f"{serve()}/{path.name}"
    with VideoReader(url) as from_url, VideoReader(path) as from_file:
        assert from_url.index.num_frames == 60
        np.testing.assert_array_equal(from_url.read(SPARSE), from_file.read(SPARSE))
    processor = StormVideoProcessor(**TINY_VIDEO_PROCESSOR)
    torch.testing.assert_close(processor(url, num_frames=8), processor(str(path), num_frames=8), rtol=0, atol=0)


def test_a_missing_video(serve):
    url = f"{serve()}/no-such-video.mp4"
    with pytest.raises(VideoDownloadError, match=f"the video '{url}': the server answered HTTP 404 .*Check the URL"):
        VideoReader(url)


def test_a_port_nobody_listens_on():
    with socket.socket() as probe:  # a free port, closed again
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/video.mp4"
    with pytest.raises(VideoDownloadError, match=f"the video '{url}': .*Connection refused.*reachable"):
        VideoReader(url)


def test_a_server_that_does_not_answer_in_time(serve):
    url = f"{serve()}/slow/video.mp4"
    with pytest.raises(VideoDownloadError, match=r"no answer for 0.5 s \(pass a longer timeout"):
        VideoReader(url, timeout=0.5)


@pytest.fixture(scope="module")
def certificate_authority():
    trustme = pytest.importorskip("trustme", reason="https tests need trustme (the dev extra)")
    return trustme.CA()


def _server_context(certificate_authority):
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    certificate_authority.issue_cert("127.0.0.1").configure_cert(context)
    return context


def test_an_https_url(serve, make_video, certificate_authority, tmp_path, monkeypatch):
    path = make_video(60)
    url = f"{serve(_server_context(certificate_authority))}/{path.name}"
    certificate_authority.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "ca.pem"))  # the client trusts the test's authority
    with VideoReader(url) as from_url, VideoReader(path) as from_file:
        np.testing.assert_array_equal(from_url.read(SPARSE), from_file.read(SPARSE))


def test_an_https_url_with_a_certificate_nobody_vouches_for(serve, make_video, certificate_authority):
    url = f"{serve(_server_context(certificate_authority))}/{make_video(60).name}"
    with pytest.raises(VideoDownloadError, match=f"the video '{url}': .*CERTIFICATE_VERIFY_FAILED"):
        VideoReader(url)



def test_the_video_processor_passes_its_timeout_to_the_download(serve):
    url = f"{serve()}/slow/video.mp4"
    with pytest.raises(VideoDownloadError, match=r"no answer for 0.5 s"):
        StormVideoProcessor(**TINY_VIDEO_PROCESSOR)(url, num_frames=8, timeout=0.5)
