"""OpenStack API responses, shaped like the examples of the OpenStack API reference.

Keystone v3 (POST /v3/auth/tokens), Nova v2.1 (flavors/detail, os-extra_specs, limits), Neutron
v2.0 (networks, quotas/{project}/details), Glance v2 (images), Cinder v3 (limits), and each
service's version document. Trimmed to the fields a response always carries plus those the
preflight reads; values are those of a small GPU project.
"""

from __future__ import annotations

from typing import Any

PROJECT_ID = "5b1d2bbd23f04d7cb3ea4c0a94ba8a1c"
USER_ID = "d6a3e1c2b5f84c7e9a0b1c2d3e4f5a6b"
EXTERNAL_NET_ID = "7a0e3bfc-1d5c-4c7b-9d84-8b9b7f6f1a11"
IMAGE_ID = "1bea47ed-f6a9-463b-b423-14b9cca9ad27"
GPU_FLAVOR_ID = "4e2a1f0c-8b7d-4f1e-9c3a-2d5b6e7f8a90"
SMALL_FLAVOR_ID = "2"
PLAIN_LARGE_FLAVOR_ID = "5"


def _media(kind: str) -> list[dict[str, str]]:
    return [{"base": "application/json", "type": f"application/vnd.openstack.{kind}"}]


def version_identity(base: str) -> dict[str, Any]:
    return {"version": {"id": "v3.14", "status": "stable", "updated": "2020-04-07T00:00:00Z",
                        "links": [{"rel": "self", "href": f"{base}/identity/v3/"}],
                        "media-types": _media("identity-v3+json")}}


def token(base: str) -> dict[str, Any]:
    def endpoint(service: str, kind: str, path: str) -> dict[str, Any]:
        return {"id": f"{service}-public", "type": kind, "name": service, "endpoints": [
            {"id": f"{service}-ep", "interface": "public", "region": "RegionOne",
             "region_id": "RegionOne", "url": f"{base}{path}"}]}

    return {"token": {
        "methods": ["password"], "expires_at": "2099-01-01T00:00:00.000000Z",
        "issued_at": "2026-01-01T00:00:00.000000Z", "audit_ids": ["3T2dc1CGQxyJsHdDu1xkcw"],
        "user": {"id": USER_ID, "name": "cdl", "password_expires_at": None,
                 "domain": {"id": "default", "name": "Default"}},
        "project": {"id": PROJECT_ID, "name": "cdl",
                    "domain": {"id": "default", "name": "Default"}},
        "roles": [{"id": "9fe2ff9ee4384b1894a90878d3e92bab", "name": "member"}],
        "is_domain": False,
        "catalog": [
            endpoint("keystone", "identity", "/identity/v3"),
            endpoint("nova", "compute", "/compute/v2.1"),
            endpoint("neutron", "network", "/network"),
            endpoint("glance", "image", "/image"),
            endpoint("cinder", "block-storage", f"/volume/v3/{PROJECT_ID}"),
        ]}}


UNAUTHORIZED = {"error": {"code": 401, "title": "Unauthorized",
                          "message": "The request you have made requires authentication."}}


def version_compute(base: str) -> dict[str, Any]:
    return {"version": {"id": "v2.1", "status": "CURRENT", "version": "2.96",
                        "min_version": "2.1", "updated": "2013-07-23T11:33:21Z",
                        "links": [{"rel": "self", "href": f"{base}/compute/v2.1/"}],
                        "media-types": _media("compute+json;version=2.1")}}


def version_network(base: str) -> dict[str, Any]:
    return {"versions": [{"id": "v2.0", "status": "CURRENT",
                          "links": [{"rel": "self", "href": f"{base}/network/v2.0/"}]}]}


def version_image(base: str) -> dict[str, Any]:
    return {"versions": [{"id": "v2.16", "status": "CURRENT",
                          "links": [{"rel": "self", "href": f"{base}/image/v2/"}]}]}


def version_volume(base: str) -> dict[str, Any]:
    return {"versions": [{"id": "v3.0", "status": "CURRENT", "version": "3.70",
                          "min_version": "3.0", "updated": "2023-08-31T00:00:00Z",
                          "links": [{"rel": "self", "href": f"{base}/volume/v3/"}],
                          "media-types": _media("volume+json;version=3")}]}


def network(name: str, net_id: str, external: bool) -> dict[str, Any]:
    return {"id": net_id, "name": name, "admin_state_up": True, "status": "ACTIVE",
            "subnets": ["54d6f61d-db07-451c-9ab3-b9609b6b6f0b"], "shared": False,
            "project_id": "admin-project", "tenant_id": "admin-project", "mtu": 1500,
            "router:external": external, "port_security_enabled": True,
            "availability_zone_hints": [], "availability_zones": ["nova"],
            "ipv4_address_scope": None, "ipv6_address_scope": None, "description": "",
            "tags": [], "created_at": "2025-01-01T00:00:00Z", "updated_at": "2025-01-01T00:00:00Z",
            "revision_number": 1, "is_default": external, "dns_domain": "",
            "qos_policy_id": None}


def image(name: str, image_id: str, status: str = "active") -> dict[str, Any]:
    return {"id": image_id, "name": name, "status": status, "visibility": "public",
            "protected": False, "container_format": "bare", "disk_format": "qcow2",
            "min_disk": 0, "min_ram": 0, "size": 660_865_024, "virtual_size": 2_361_393_152,
            "checksum": "d8b3d8e1e3b0c2f0a1b2c3d4e5f6a7b8", "os_hash_algo": "sha512",
            "os_hash_value": "0" * 128, "owner": "admin-project", "tags": [],
            "created_at": "2025-01-01T00:00:00Z", "updated_at": "2025-01-01T00:00:00Z",
            "self": f"/v2/images/{image_id}", "file": f"/v2/images/{image_id}/file",
            "schema": "/v2/schemas/image", "os_hidden": False}


def flavor(name: str, flavor_id: str, vcpus: int, ram: int, disk: int) -> dict[str, Any]:
    return {"id": flavor_id, "name": name, "vcpus": vcpus, "ram": ram, "disk": disk,
            "OS-FLV-EXT-DATA:ephemeral": 0, "OS-FLV-DISABLED:disabled": False, "swap": 0,
            "rxtx_factor": 1.0, "os-flavor-access:is_public": True, "description": None,
            "links": [{"rel": "self", "href": f"/v2.1/flavors/{flavor_id}"}]}


def compute_limits(instances: tuple[int, int], cores: tuple[int, int],
                   ram: tuple[int, int]) -> dict[str, Any]:
    return {"limits": {"rate": [], "absolute": {
        "maxTotalInstances": instances[0], "totalInstancesUsed": instances[1],
        "maxTotalCores": cores[0], "totalCoresUsed": cores[1],
        "maxTotalRAMSize": ram[0], "totalRAMUsed": ram[1],
        "maxImageMeta": 128, "maxPersonality": 5, "maxPersonalitySize": 10240,
        "maxSecurityGroupRules": 20, "maxSecurityGroups": 10, "maxServerMeta": 128,
        "maxTotalFloatingIps": 10, "totalFloatingIpsUsed": 0, "totalSecurityGroupsUsed": 0,
        "maxTotalKeypairs": 100, "maxServerGroups": 10, "maxServerGroupMembers": 10,
        "totalServerGroupsUsed": 0}}}


def volume_limits(volumes: tuple[int, int], gigabytes: tuple[int, int]) -> dict[str, Any]:
    return {"limits": {"rate": [], "absolute": {
        "maxTotalVolumes": volumes[0], "totalVolumesUsed": volumes[1],
        "maxTotalVolumeGigabytes": gigabytes[0], "totalGigabytesUsed": gigabytes[1],
        "maxTotalSnapshots": 10, "totalSnapshotsUsed": 0, "maxTotalBackups": 10,
        "totalBackupsUsed": 0, "maxTotalBackupGigabytes": 1000,
        "totalBackupGigabytesUsed": 0}}}


def network_quota_details(floating_ips: tuple[int, int, int]) -> dict[str, Any]:
    def detail(limit: int, used: int = 0, reserved: int = 0) -> dict[str, int]:
        return {"limit": limit, "used": used, "reserved": reserved}

    return {"quota": {
        "floatingip": detail(*floating_ips), "network": detail(100, 1),
        "port": detail(500, 3), "rbac_policy": detail(10), "router": detail(10, 1),
        "security_group": detail(10, 1), "security_group_rule": detail(100, 4),
        "subnet": detail(100, 1), "subnetpool": detail(-1)}}
