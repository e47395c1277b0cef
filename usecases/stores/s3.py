"""Model folders on the platform's S3 store (MinIO, or an external one), where
``charts/cdl-model`` fetches a served version from (#13).

A packaged MLServer model folder (``model-settings.json``, ``cdl_serving/``, ``artifacts/``) is
stored key for key under ``<name>/<version>/`` of the models bucket (``cdl-models``, which the
platform creates: ``stacks/platform/wiring.py``). ``s3://<bucket>/<name>/<version>`` is the
chart's ``model.uri``: its init container copies that prefix into the server's model folder.

Thin over boto3's S3 client: path-style addressing (MinIO and most S3-compatible stores need
it); checksums only where the S3 API demands them (not every store takes the ones boto3 adds by
default); a short connect timeout and one retry, so that an unreachable endpoint fails in
seconds, as a ``CDLError`` naming the endpoint, the bucket and the fix.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from urllib.parse import urlparse

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as S3ConnectionError

from usecases.errors import CDLError

DEFAULT_BUCKET = "cdl-models"
DEFAULT_REGION = "us-east-1"  # MinIO's; an external store may name its own
SETTINGS = "model-settings.json"  # what makes a folder an MLServer model folder
_DENIED = {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"}


class ModelFolders:
    """The model folders in one bucket of the store at ``endpoint`` (``http(s)://HOST:PORT``)."""

    def __init__(self, endpoint: str, access_key: str, secret_key: str,
                 region: str = DEFAULT_REGION, bucket: str = DEFAULT_BUCKET,
                 connect_timeout: float = 5.0, read_timeout: float = 60.0) -> None:
        if urlparse(endpoint).scheme not in ("http", "https") or not urlparse(endpoint).netloc:
            raise CDLError(f"S3 endpoint {endpoint!r} is not an http(s) URL",
                           "pass http://HOST:PORT (MinIO in the cluster) or https://HOST")
        self.endpoint = endpoint
        self.bucket = bucket
        self.client = boto3.client(
            "s3", endpoint_url=endpoint, aws_access_key_id=access_key,
            aws_secret_access_key=secret_key, region_name=region,
            config=Config(connect_timeout=connect_timeout, read_timeout=read_timeout,
                          retries={"mode": "standard", "max_attempts": 2},
                          s3={"addressing_style": "path"},
                          request_checksum_calculation="when_required",
                          response_checksum_validation="when_required"))

    def uri(self, name: str, version: int) -> str:
        """The folder's address, as ``charts/cdl-model`` takes it (``model.uri``)."""
        return f"s3://{self.bucket}/{name}/{version}"

    def upload(self, folder: Path, name: str, version: int) -> str:
        """Store a packaged model folder as ``name`` version ``version``; returns its URI."""
        if not (folder / SETTINGS).is_file():
            raise CDLError(f"{folder} is not a model folder (no {SETTINGS})",
                           "upload the folder the deploy step packaged")
        if self._keys(name, version):
            raise CDLError(f"{self.uri(name, version)} already holds a model folder",
                           "upload under a new version, or delete that one first")
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            key = f"{name}/{version}/{path.relative_to(folder).as_posix()}"
            with self._s3(f"write {key}"):
                self.client.put_object(Bucket=self.bucket, Key=key, Body=path.read_bytes())
        return self.uri(name, version)

    def download(self, name: str, version: int, dest: Path) -> list[Path]:
        """Copy ``name`` version ``version`` into ``dest``; returns the files written."""
        keys = self._keys(name, version)
        if not keys:
            raise CDLError(f"{self.uri(name, version)} holds no model folder",
                           f"pick one of the stored versions of {name}: {self.versions(name)}")
        written = []
        for key in keys:
            relative = PurePosixPath(key).relative_to(f"{name}/{version}")
            if ".." in relative.parts:
                raise CDLError(f"bucket {self.bucket} holds a key outside its folder: {key}",
                               "delete that key from the bucket")
            target = dest.joinpath(*relative.parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            with self._s3(f"read {key}"):
                target.write_bytes(self.client.get_object(Bucket=self.bucket, Key=key)
                                   ["Body"].read())
            written.append(target)
        return written

    def versions(self, name: str) -> list[int]:
        """The versions of ``name`` the bucket holds, in order."""
        found: set[int] = set()
        with self._s3(f"list {name}/"):
            for page in self.client.get_paginator("list_objects_v2").paginate(
                    Bucket=self.bucket, Prefix=f"{name}/", Delimiter="/"):
                for prefix in page.get("CommonPrefixes", []):
                    version = prefix["Prefix"][len(name) + 1:].rstrip("/")
                    if version.isdigit():
                        found.add(int(version))
        return sorted(found)

    def delete(self, name: str, version: int) -> int:
        """Delete ``name`` version ``version``; returns how many objects went."""
        keys = self._keys(name, version)
        for start in range(0, len(keys), 1000):  # DeleteObjects takes at most 1000 keys
            with self._s3(f"delete {name}/{version}/"):
                answer = self.client.delete_objects(Bucket=self.bucket, Delete={
                    "Objects": [{"Key": k} for k in keys[start:start + 1000]], "Quiet": True})
            if answer.get("Errors"):
                first = answer["Errors"][0]
                raise CDLError(f"S3 at {self.endpoint} kept {len(answer['Errors'])} objects of "
                               f"{self.uri(name, version)} ({first['Key']}: {first['Code']})",
                               "check that the access key may delete in that bucket")
        return len(keys)

    def _keys(self, name: str, version: int) -> list[str]:
        keys: list[str] = []
        with self._s3(f"list {name}/{version}/"):
            for page in self.client.get_paginator("list_objects_v2").paginate(
                    Bucket=self.bucket, Prefix=f"{name}/{version}/"):
                keys.extend(item["Key"] for item in page.get("Contents", []))
        return keys

    @contextmanager
    def _s3(self, what: str) -> Iterator[None]:
        try:
            yield
        except (S3ConnectionError, HTTPClientError) as exc:
            raise CDLError(f"S3 endpoint {self.endpoint} is unreachable ({exc})",
                           "check the endpoint and that the store runs (the platform's MinIO: "
                           "`kubectl -n cdl-storage get pods`; from outside the cluster, "
                           "`kubectl -n cdl-storage port-forward svc/minio 9000` and pass "
                           "http://localhost:9000)") from exc
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code, message = str(error.get("Code", "")), error.get("Message", "")
            if code in _DENIED:
                raise CDLError(f"S3 at {self.endpoint} refused to {what} in bucket "
                               f"{self.bucket} ({code})",
                               "check the access and secret key (the platform keeps them in the "
                               "cdl-model-storage Secret) and that they may use the bucket"
                               ) from exc
            if code == "NoSuchBucket":
                raise CDLError(f"bucket {self.bucket} does not exist at {self.endpoint}",
                               "pass the bucket that holds the models, or create it") from exc
            raise CDLError(f"S3 at {self.endpoint} could not {what} in bucket {self.bucket}: "
                           f"{code}: {message}", "see the store's log") from exc
        except BotoCoreError as exc:
            raise CDLError(f"could not {what} in bucket {self.bucket} at {self.endpoint}: {exc}",
                           "check the endpoint and the credentials") from exc
