"""Contract tests of the S3 model folders (``usecases/stores/s3.py``).

No S3 store runs here. botocore's ``Stubber`` stands in for one: it checks each request the
adapter makes against the S3 service model botocore ships (every parameter asserted as
expected), and the answers it gives must fit that model's output shapes. One test looks at the
HTTP requests themselves (path-style URLs, SigV4, no optional checksums), answered by a
``before-send`` hook instead of a store.
"""

from __future__ import annotations

import io
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.awsrequest import AWSPreparedRequest, AWSResponse
from botocore.response import StreamingBody
from botocore.stub import Stubber

from usecases.errors import CDLError
from usecases.stores.s3 import ModelFolders
from usecases.workflow.deploy import free_port

ENDPOINT = "http://minio.example:9000"
BUCKET = "cdl-models"
FOLDER = {"model-settings.json": b'{"name": "bbc", "implementation": "cdl_serving.BBC"}',
          "cdl_serving/__init__.py": b"",
          "artifacts/model.pt": bytes(range(256))}


@pytest.fixture
def models() -> ModelFolders:
    return ModelFolders(ENDPOINT, "cdl-access", "cdl-secret")


@pytest.fixture
def stub(models: ModelFolders) -> Iterator[Stubber]:
    with Stubber(models.client) as stubber:
        yield stubber
        stubber.assert_no_pending_responses()


def model_folder(root: Path) -> Path:
    for path, data in FOLDER.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(data)
    return root


def listing(keys: list[str], **more: Any) -> dict[str, Any]:
    """A ListObjectsV2 answer in the service model's shape."""
    return {"IsTruncated": False, "KeyCount": len(keys), "Name": BUCKET,
            "Contents": [{"Key": key, "Size": 1} for key in keys], **more}


def test_contract_upload_writes_each_file_under_name_and_version(
        models: ModelFolders, stub: Stubber, tmp_path: Path) -> None:
    stub.add_response("list_objects_v2", listing([]), {"Bucket": BUCKET, "Prefix": "bbc/3/"})
    for path in sorted(FOLDER):
        stub.add_response("put_object", {"ETag": '"etag"'},
                          {"Bucket": BUCKET, "Key": f"bbc/3/{path}", "Body": FOLDER[path]})
    # the URI charts/cdl-model takes as model.uri
    assert models.upload(model_folder(tmp_path / "bbc"), "bbc", 3) == "s3://cdl-models/bbc/3"


def test_contract_upload_refuses_a_version_already_stored_and_a_non_model_folder(
        models: ModelFolders, stub: Stubber, tmp_path: Path) -> None:
    stub.add_response("list_objects_v2", listing(["bbc/3/model-settings.json"]),
                      {"Bucket": BUCKET, "Prefix": "bbc/3/"})
    with pytest.raises(CDLError, match="s3://cdl-models/bbc/3 already holds a model folder"):
        models.upload(model_folder(tmp_path / "bbc"), "bbc", 3)
    (tmp_path / "empty").mkdir()
    with pytest.raises(CDLError, match="no model-settings.json"):
        models.upload(tmp_path / "empty", "bbc", 4)


def test_contract_download_reads_every_key_of_the_version(
        models: ModelFolders, stub: Stubber, tmp_path: Path) -> None:
    keys = [f"fmnist/2/{path}" for path in sorted(FOLDER)]
    stub.add_response("list_objects_v2", listing(keys), {"Bucket": BUCKET, "Prefix": "fmnist/2/"})
    for key, path in zip(keys, sorted(FOLDER), strict=True):
        data = FOLDER[path]
        stub.add_response("get_object", {"Body": StreamingBody(io.BytesIO(data), len(data)),
                                         "ContentLength": len(data)},
                          {"Bucket": BUCKET, "Key": key})
    got = models.download("fmnist", 2, tmp_path / "out")
    assert sorted(got) == sorted(tmp_path / "out" / path for path in FOLDER)
    for path, data in FOLDER.items():
        assert (tmp_path / "out" / path).read_bytes() == data


def test_contract_download_of_a_missing_version_lists_the_stored_ones(
        models: ModelFolders, stub: Stubber, tmp_path: Path) -> None:
    stub.add_response("list_objects_v2", listing([]), {"Bucket": BUCKET, "Prefix": "bbc/9/"})
    stub.add_response("list_objects_v2", listing([], CommonPrefixes=[{"Prefix": "bbc/3/"}]),
                      {"Bucket": BUCKET, "Prefix": "bbc/", "Delimiter": "/"})
    with pytest.raises(CDLError, match=r"s3://cdl-models/bbc/9 holds no model folder") as raised:
        models.download("bbc", 9, tmp_path / "out")
    assert "[3]" in raised.value.fix


def test_contract_versions_follow_every_page_of_the_listing(
        models: ModelFolders, stub: Stubber) -> None:
    stub.add_response("list_objects_v2",
                      listing([], IsTruncated=True, NextContinuationToken="page-2",
                              CommonPrefixes=[{"Prefix": "bbc/10/"}, {"Prefix": "bbc/tmp/"}]),
                      {"Bucket": BUCKET, "Prefix": "bbc/", "Delimiter": "/"})
    stub.add_response("list_objects_v2", listing([], CommonPrefixes=[{"Prefix": "bbc/2/"}]),
                      {"Bucket": BUCKET, "Prefix": "bbc/", "Delimiter": "/",
                       "ContinuationToken": "page-2"})
    assert models.versions("bbc") == [2, 10]  # numbers, in order; other prefixes ignored


def test_contract_delete_removes_the_version_at_most_1000_keys_a_request(
        models: ModelFolders, stub: Stubber) -> None:
    keys = [f"bbc/3/artifacts/{i:04d}" for i in range(1001)]
    stub.add_response("list_objects_v2", listing(keys), {"Bucket": BUCKET, "Prefix": "bbc/3/"})
    for batch in (keys[:1000], keys[1000:]):
        stub.add_response("delete_objects", {}, {
            "Bucket": BUCKET, "Delete": {"Objects": [{"Key": k} for k in batch], "Quiet": True}})
    assert models.delete("bbc", 3) == 1001


def test_contract_objects_the_store_kept_are_an_error(
        models: ModelFolders, stub: Stubber) -> None:
    stub.add_response("list_objects_v2", listing(["bbc/3/model-settings.json"]),
                      {"Bucket": BUCKET, "Prefix": "bbc/3/"})
    stub.add_response("delete_objects", {"Errors": [{"Key": "bbc/3/model-settings.json",
                                                     "Code": "AccessDenied"}]},
                      {"Bucket": BUCKET, "Delete": {"Objects": [
                          {"Key": "bbc/3/model-settings.json"}], "Quiet": True}})
    with pytest.raises(CDLError, match="kept 1 objects of s3://cdl-models/bbc/3"):
        models.delete("bbc", 3)


@pytest.mark.parametrize(("code", "status", "says", "fix"), [
    ("AccessDenied", 403, "refused to list bbc/ in bucket cdl-models", "secret key"),
    ("InvalidAccessKeyId", 403, "refused to list bbc/ in bucket cdl-models", "secret key"),
    ("NoSuchBucket", 404, "bucket cdl-models does not exist at http://minio.example:9000",
     "create it"),
])
def test_contract_store_errors_name_the_endpoint_bucket_and_fix(
        models: ModelFolders, stub: Stubber, code: str, status: int, says: str,
        fix: str) -> None:
    stub.add_client_error("list_objects_v2", service_error_code=code, http_status_code=status,
                          expected_params={"Bucket": BUCKET, "Prefix": "bbc/", "Delimiter": "/"})
    with pytest.raises(CDLError, match=says) as raised:
        models.versions("bbc")
    assert fix in raised.value.fix


def test_contract_requests_are_path_style_sigv4_without_optional_checksums(
        models: ModelFolders, tmp_path: Path) -> None:
    sent: list[AWSPreparedRequest] = []

    class Raw:
        def __init__(self, body: bytes) -> None:
            self.body = body

        def stream(self, **_: Any) -> Iterator[bytes]:
            yield self.body

    def answer(request: AWSPreparedRequest, **_: Any) -> AWSResponse:
        sent.append(request)
        body = (b'<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
                b"<Name>cdl-models</Name><KeyCount>0</KeyCount><IsTruncated>false</IsTruncated>"
                b"</ListBucketResult>") if request.method == "GET" else b""
        return AWSResponse(request.url, 200, {}, Raw(body))

    models.client.meta.events.register("before-send.s3", answer)
    models.upload(model_folder(tmp_path / "bbc"), "bbc", 3)
    assert [(r.method, r.url.split("?")[0]) for r in sent] == [
        ("GET", f"{ENDPOINT}/{BUCKET}"),
        *[("PUT", f"{ENDPOINT}/{BUCKET}/bbc/3/{path}") for path in sorted(FOLDER)]]
    for request in sent:
        headers = {k.lower(): v.decode() if isinstance(v, bytes) else v
                   for k, v in request.headers.items()}
        assert headers["authorization"].startswith(
            "AWS4-HMAC-SHA256 Credential=cdl-access/")
        assert "/us-east-1/s3/aws4_request" in headers["authorization"]
        assert not [k for k in headers if k.startswith("x-amz-checksum-")
                    or k == "x-amz-sdk-checksum-algorithm"]


def test_contract_an_endpoint_that_never_answers_fails_within_the_connect_timeouts() -> None:
    with socket.socket() as listener, socket.socket() as first:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        first.connect(listener.getsockname())  # queue full: the kernel drops later attempts
        endpoint = f"http://127.0.0.1:{listener.getsockname()[1]}"
        # the connect timeout given is the one botocore applied and gave up on
        with pytest.raises(CDLError, match=rf"S3 endpoint {endpoint} is unreachable .*"
                                           r"Connect timeout"):
            ModelFolders(endpoint, "cdl-access", "cdl-secret", connect_timeout=0.5).versions("x")


def test_contract_an_unreachable_endpoint_fails_in_seconds() -> None:
    port = free_port()  # nothing listens on it
    endpoint = f"http://127.0.0.1:{port}"
    with pytest.raises(CDLError, match=f"S3 endpoint {endpoint} is unreachable") as raised:
        ModelFolders(endpoint, "cdl-access", "cdl-secret", connect_timeout=2).versions("bbc")
    assert "port-forward" in raised.value.fix
    with pytest.raises(CDLError, match="is not an http"):
        ModelFolders("127.0.0.1:9000", "cdl-access", "cdl-secret")
