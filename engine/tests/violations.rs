//! A real registry behind a proxy that breaks the spec on purpose: each violation must be
//! reported as FAIL on the right test, with a reason naming what was wrong.
//!
//! The matrix tests inject one violation per requirement row into docker-registry (and, for
//! what only a registry with the referrers API can break, ferro-oci-server), after a baseline
//! run without it. `MATRIX_ONLY=<row text>` runs only matching violations, `MATRIX_DEBUG=1`
//! prints each run.

mod common;

use std::sync::{Arc, Mutex};

use common::fake::{Action, FakeServer, Req, Resp};
use common::registry::Registry;
use common::{reason, run_against, status_of, TempDir};

fn run_through(proxy: &FakeServer, filter: &str) -> serde_json::Value {
    let out = TempDir::new("viol");
    let args = ["--filter", filter, "--seed", "7"];
    let (o, r) = run_against(&proxy.addr, &out.0, &args, &[]);
    assert_eq!(
        o.status.code(),
        Some(4),
        "a violation must exit with 4: {}",
        common::text(&o)
    );
    r
}

#[test]
fn wrong_status_on_blob_put_fails_the_push() {
    let reg = Registry::docker();
    let proxy = FakeServer::proxy(&reg.addr, |req, mut resp| {
        if req.method == "PUT" && req.path.contains("/blobs/uploads/") && resp.status == 201 {
            resp.status = 200;
        }
        Action::Respond(resp)
    });
    let r = run_through(&proxy, "sha256 blobs/post+put");
    assert_eq!(status_of(&r, "sha256 blobs/post+put/blob-post-put"), "FAIL");
    assert!(
        reason(&r, "sha256 blobs/post+put/blob-post-put").contains("expected status 201, got 200"),
        "{}",
        reason(&r, "sha256 blobs/post+put/blob-post-put")
    );
    assert_eq!(r["apis"]["Blob post put"], "FAIL");
}

#[test]
fn missing_location_header_fails() {
    let reg = Registry::docker();
    let proxy = FakeServer::proxy(&reg.addr, |req, resp| {
        if req.method == "POST" && req.path.contains("/blobs/uploads/") {
            return Action::Respond(resp.without("location"));
        }
        Action::Respond(resp)
    });
    let r = run_through(&proxy, "sha256 blobs/post+put");
    assert_eq!(status_of(&r, "sha256 blobs/post+put/blob-post-put"), "FAIL");
    assert!(
        reason(&r, "sha256 blobs/post+put/blob-post-put").contains("header Location is missing")
    );
}

#[test]
fn corrupted_blob_body_fails_the_get() {
    let reg = Registry::docker();
    // The push verifies its upload with a first GET; corrupt only the later GETs.
    let seen = Mutex::new(std::collections::HashSet::new());
    let proxy = FakeServer::proxy(&reg.addr, move |req, mut resp| {
        if req.method == "GET"
            && req.path.contains("/blobs/sha256:")
            && resp.status == 200
            && !resp.body.is_empty()
            && !seen.lock().unwrap().insert(req.path.clone())
        {
            resp.body[0] ^= 0xff;
        }
        Action::Respond(resp)
    });
    let r = run_through(&proxy, "sha256 blobs/post+put");
    assert_eq!(status_of(&r, "sha256 blobs/post+put/blob-get"), "FAIL");
    assert!(
        reason(&r, "sha256 blobs/post+put/blob-get").contains("body differs"),
        "{}",
        reason(&r, "sha256 blobs/post+put/blob-get")
    );
}

/// The worked example of docs/maintainers.md: a registry that answers 200 to HEAD of a blob it
/// does not have breaks R41, and `extra/absent content/head missing blob` catches it.
#[test]
fn head_of_a_missing_blob_must_be_404() {
    let reg = Registry::docker();
    let proxy = FakeServer::proxy(&reg.addr, |req, mut resp| {
        if req.method == "HEAD" && req.path.contains("/blobs/") && resp.status == 404 {
            resp.status = 200;
        }
        Action::Respond(resp)
    });
    let r = run_through(&proxy, "extra/absent content/head missing blob");
    let id = "extra/absent content/head missing blob";
    assert_eq!(status_of(&r, id), "FAIL");
    assert!(
        reason(&r, id).contains("expected status 404, got 200"),
        "{}",
        reason(&r, id)
    );
    assert_eq!(
        r["tests"].as_array().unwrap().len(),
        1,
        "the filter runs only this case"
    );
}

/// How a violation changes an answer.
type Alter = fn(&Req, &mut Resp);

/// One injected violation: the registry it is injected into, the tests it runs, how answers
/// are altered, and where the FAIL must show.
struct Violation {
    /// The requirement row it breaks.
    row: &'static str,
    ferro: bool,
    version: &'static str,
    filter: &'static [&'static str],
    alter: Alter,
    /// A test id starting with this must FAIL…
    test: &'static str,
    /// …with a reason containing this.
    because: &'static str,
}

fn is(req: &Req, method: &str, part: &str) -> bool {
    req.method == method && req.path.contains(part)
}

fn set_header(resp: &mut Resp, name: &str, value: &str) {
    resp.headers.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
    resp.headers.push((name.to_string(), value.to_string()));
}

fn edit_json(resp: &mut Resp, f: impl FnOnce(&mut serde_json::Value)) {
    if let Ok(mut v) = serde_json::from_slice::<serde_json::Value>(&resp.body) {
        f(&mut v);
        resp.body = serde_json::to_vec(&v).unwrap();
    }
}

/// A header an alteration sets to have the answer's body sent even to a HEAD.
const BODY_ON_HEAD: &str = "x-test-body-on-head";

const ZEROS: &str = "sha256:0000000000000000000000000000000000000000000000000000000000000000";

fn violations() -> Vec<Violation> {
    let v = |row, filter, alter, test, because| Violation {
        row,
        ferro: false,
        version: "1.1",
        filter,
        alter,
        test,
        because,
    };
    vec![
        v(
            "R19 manifest bytes",
            &["image"],
            |q, r| {
                if is(q, "GET", "/manifests/") && r.status == 200 {
                    r.body.insert(0, b' ');
                }
            },
            // the push reads the manifest back and finds other bytes
            "image/push/manifest-by-digest",
            "",
        ),
        v(
            "R31 blob digest header",
            &["sha256 blobs/post+put"],
            |q, r| {
                if is(q, "GET", "/blobs/sha256:") && r.status == 200 {
                    set_header(r, "Docker-Content-Digest", ZEROS);
                }
            },
            "sha256 blobs/post+put/blob-get",
            "Docker-Content-Digest",
        ),
        v(
            "R34 missing blob",
            &["sha256 blobs/get-missing"],
            |q, r| {
                if is(q, "GET", "/blobs/") && r.status == 404 {
                    r.status = 200;
                    r.body.clear();
                }
            },
            "sha256 blobs/get-missing",
            "expected status 404, got 200",
        ),
        v(
            "R45 upload POST status",
            &["sha256 blobs/chunked single"],
            |q, r| {
                if is(q, "POST", "/blobs/uploads/") && r.status == 202 {
                    r.status = 200;
                }
            },
            "sha256 blobs/chunked single",
            "got 200",
        ),
        v(
            "R72 chunk Range",
            &["sha256 blobs/chunked multi"],
            |q, r| {
                if is(q, "PATCH", "/blobs/uploads/") && r.status == 202 {
                    let end: Option<u64> = r
                        .get("range")
                        .and_then(|v| v.split('-').nth(1))
                        .and_then(|e| e.parse().ok());
                    if let Some(e) = end {
                        set_header(r, "Range", &format!("0-{}", e + 1));
                    }
                }
            },
            "sha256 blobs/chunked multi",
            "Range",
        ),
        v(
            "R82 upload status code",
            &["extra/uploads"],
            |q, r| {
                if is(q, "GET", "/blobs/uploads/") && r.status == 204 {
                    r.status = 200;
                }
            },
            "extra/uploads/status after each chunk",
            "got 200",
        ),
        v(
            "R106 manifest PUT status",
            &["image"],
            |q, r| {
                if is(q, "PUT", "/manifests/") && r.status == 201 {
                    r.status = 200;
                }
            },
            "image/push/manifest-by-digest",
            "expected status 201, got 200",
        ),
        v(
            "R108 manifest PUT digest",
            &["image"],
            |q, r| {
                if is(q, "PUT", "/manifests/") && r.status == 201 {
                    set_header(r, "Docker-Content-Digest", ZEROS);
                }
            },
            "image/push/manifest-by-digest",
            "Docker-Content-Digest",
        ),
        v(
            "R53 blob Location",
            &["sha256 blobs/post+put"],
            |q, r| {
                if is(q, "PUT", "/blobs/uploads/") && r.status == 201 {
                    set_header(
                        r,
                        "Location",
                        &format!("/v2/conformance/repo1/blobs/{ZEROS}"),
                    );
                }
            },
            "sha256 blobs/post+put",
            "",
        ),
        v(
            "R79 closing PUT status",
            &["sha256 blobs/chunked single"],
            |q, r| {
                if is(q, "PUT", "/blobs/uploads/") && r.status == 201 {
                    r.status = 202;
                }
            },
            "sha256 blobs/chunked single",
            "got 202",
        ),
        v(
            "R131 tag list name",
            &["image"],
            |q, r| {
                if is(q, "GET", "/tags/list") && r.status == 200 {
                    edit_json(r, |v| {
                        v.as_object_mut().unwrap().remove("name");
                    });
                }
            },
            "image/tag-list",
            "name",
        ),
        v(
            "R127 tag list complete",
            &["image"],
            |q, r| {
                if is(q, "GET", "/tags/list") && r.status == 200 {
                    edit_json(r, |v| {
                        if let Some(t) = v["tags"].as_array_mut() {
                            t.pop();
                        }
                    });
                }
            },
            "image/tag-list",
            "",
        ),
        v(
            "R166 manifest DELETE status",
            &["image"],
            |q, r| {
                if is(q, "DELETE", "/manifests/") && r.status == 202 {
                    r.status = 200;
                }
            },
            "image/delete/manifest-delete",
            "got 200",
        ),
        v(
            "R170 blob DELETE status",
            &["sha256 blobs/post+put"],
            |q, r| {
                if is(q, "DELETE", "/blobs/") && r.status == 202 {
                    r.status = 204;
                }
            },
            "sha256 blobs/post+put",
            "got 204",
        ),
        v(
            "R41 HEAD missing manifest",
            &["extra/absent content"],
            |q, r| {
                if is(q, "HEAD", "/manifests/") && r.status == 404 {
                    r.status = 200;
                }
            },
            "extra/absent content/head missing manifest",
            "expected status 404, got 200",
        ),
        v(
            "R201 error code",
            &["extra/error bodies"],
            |_, r| {
                if r.status == 404 {
                    edit_json(r, |v| {
                        if let Some(e) = v["errors"].as_array_mut() {
                            for e in e {
                                e["code"] = "NO_SUCH_THING".into();
                            }
                        }
                    });
                }
            },
            "extra/error bodies/unknown blob",
            "NO_SUCH_THING",
        ),
        v(
            "R204 Warning header",
            &["ping"],
            |_, r| {
                r.headers
                    .push(("Warning".into(), "199 - \"this registry warns\"".into()));
            },
            "ping",
            "Warning",
        ),
        v(
            "R28 range bytes",
            &["sha256 blobs/range requests"],
            |q, r| {
                if is(q, "GET", "/blobs/") && r.status == 206 && !r.body.is_empty() {
                    r.body[0] ^= 0xff;
                }
            },
            "sha256 blobs/range requests",
            "",
        ),
        v(
            "deletes that do not delete",
            &["image"],
            |q, r| {
                // Answers every later GET of a manifest with the bytes it once had.
                static SEEN: Mutex<Vec<(String, Resp)>> = Mutex::new(Vec::new());
                if !is(q, "GET", "/manifests/sha256:") {
                    return;
                }
                let mut seen = SEEN.lock().unwrap();
                if r.status == 200 {
                    seen.push((q.path.clone(), r.clone()));
                } else if let Some((_, old)) = seen.iter().find(|(p, _)| *p == q.path) {
                    *r = old.clone();
                }
            },
            "image/delete/manifest-delete-atomic",
            "",
        ),
        v(
            "HEAD answer with a body (RFC 9110)",
            &["image"],
            |q, r| {
                if is(q, "HEAD", "/manifests/sha256:") && r.status == 200 {
                    let len = r
                        .get("content-length")
                        .and_then(|l| l.parse().ok())
                        .unwrap_or(0);
                    r.body = vec![b' '; len];
                    set_header(r, BODY_ON_HEAD, "1");
                }
            },
            "image/head/manifest-head-by-digest",
            "the answer to a HEAD carries a body",
        ),
        v(
            "R36 HEAD of a manifest",
            &["image"],
            |q, r| {
                if is(q, "HEAD", "/manifests/") && r.status == 200 {
                    r.status = 404;
                }
            },
            "image/head/manifest-head-by-digest",
            "expected status 200, got 404",
        ),
        v(
            "R84 upload status Range",
            &["extra/uploads"],
            |q, r| {
                if is(q, "GET", "/blobs/uploads/") && r.status == 204 {
                    set_header(r, "Range", "0-0");
                }
            },
            "extra/uploads/status after each chunk",
            "Range",
        ),
        v(
            "R91 mount Location",
            &["sha256 blobs/mount"],
            |q, r| {
                if is(q, "POST", "mount=") && r.status == 201 {
                    r.headers
                        .retain(|(k, _)| !k.eq_ignore_ascii_case("location"));
                }
            },
            "sha256 blobs/mount",
            "Location",
        ),
        v(
            "R168 manifest DELETE refused with 403",
            &["image"],
            |q, r| {
                if is(q, "DELETE", "/manifests/") && r.status == 202 {
                    r.status = 403;
                }
            },
            "image/delete/manifest-delete",
            "got 403",
        ),
        v(
            "R171 DELETE of an unknown blob",
            &["extra/absent content"],
            |q, r| {
                if is(q, "DELETE", "/blobs/") && r.status == 404 {
                    r.status = 202;
                    r.body.clear();
                }
            },
            "extra/absent content/delete unknown blob",
            "got 202",
        ),
        v(
            "R167 DELETE in a missing repository",
            &["extra/absent content"],
            |q, r| {
                if is(q, "DELETE", "/manifests/") && r.status == 404 {
                    r.status = 202;
                    r.body.clear();
                }
            },
            "extra/absent content/delete in a missing repository",
            "got 202",
        ),
        v(
            "R110 pull from a missing repository",
            &["extra/absent content"],
            |q, r| {
                if is(q, "GET", "/manifests/") && r.status == 404 {
                    r.status = 200;
                }
            },
            "extra/absent content/pull from a missing repository",
            "got 200",
        ),
        v(
            "R205 Warning with a date",
            &["ping"],
            |_, r| {
                r.headers.push((
                    "Warning".into(),
                    "299 - \"deprecated\" \"Sat, 01 Jan 2000 00:00:00 GMT\"".into(),
                ));
            },
            "ping",
            "Warning",
        ),
        v(
            "R105 exact bytes",
            &["extra/manifests"],
            |q, r| {
                // Same JSON, other bytes: keys sorted, no odd whitespace.
                if is(q, "GET", "/manifests/sha256:") && r.status == 200 {
                    edit_json(r, |_| {});
                }
            },
            "extra/manifests/exact bytes",
            "",
        ),
        Violation {
            version: "dev",
            ..v(
                "R22 manifest GET digest header (dev)",
                &["image"],
                |q, r| {
                    if is(q, "GET", "/manifests/") && r.status == 200 {
                        r.headers
                            .retain(|(k, _)| !k.eq_ignore_ascii_case("docker-content-digest"));
                    }
                },
                "image/pull/manifest-by-digest",
                "Docker-Content-Digest",
            )
        },
        Violation {
            version: "dev",
            ..v(
                "R38 HEAD digest header (dev)",
                &["image"],
                |q, r| {
                    if is(q, "HEAD", "/blobs/") && r.status == 200 {
                        r.headers
                            .retain(|(k, _)| !k.eq_ignore_ascii_case("docker-content-digest"));
                    }
                },
                "image/head/blob-head",
                "Docker-Content-Digest",
            )
        },
        Violation {
            version: "dev",
            ..v(
                "R40 HEAD Content-Length (dev)",
                &["image"],
                |q, r| {
                    if is(q, "HEAD", "/manifests/") && r.status == 200 {
                        set_header(r, "Content-Length", "3");
                    }
                },
                "image/head/manifest-head-by-digest",
                "Content-Length",
            )
        },
        v(
            "R42 manifest with a missing subject",
            &["missing-subject"],
            |q, r| {
                if is(q, "PUT", "/manifests/") && r.status == 201 {
                    r.status = 400;
                    r.body = br#"{"errors":[{"code":"MANIFEST_INVALID","message":"no subject"}]}"#
                        .to_vec();
                }
            },
            "missing-subject/push/manifest-by-digest",
            "got 400",
        ),
        v(
            "R70 PATCH status",
            &["sha256 blobs/stream"],
            |q, r| {
                if is(q, "PATCH", "/blobs/uploads/") && r.status == 202 {
                    r.status = 204;
                }
            },
            "sha256 blobs/stream",
            "got 204",
        ),
        v(
            "R71 PATCH Location",
            &["sha256 blobs/chunked multi"],
            |q, r| {
                if is(q, "PATCH", "/blobs/uploads/") && r.status == 202 {
                    r.headers
                        .retain(|(k, _)| !k.eq_ignore_ascii_case("location"));
                }
            },
            "sha256 blobs/chunked multi",
            "Location",
        ),
        v(
            "R80 closing PUT Location",
            &["sha256 blobs/chunked single"],
            |q, r| {
                if is(q, "PUT", "/blobs/uploads/") && r.status == 201 {
                    set_header(
                        r,
                        "Location",
                        &format!("/v2/conformance/repo1/blobs/{ZEROS}"),
                    );
                }
            },
            "sha256 blobs/chunked single",
            "",
        ),
        v(
            "R83 upload status Location",
            &["extra/uploads"],
            |q, r| {
                if is(q, "GET", "/blobs/uploads/") && r.status == 204 {
                    r.headers
                        .retain(|(k, _)| !k.eq_ignore_ascii_case("location"));
                }
            },
            "extra/uploads/status after each chunk",
            "Location",
        ),
        v(
            "R90 mount status",
            &["sha256 blobs/mount"],
            |q, r| {
                if is(q, "POST", "mount=") && r.status == 201 {
                    r.status = 200;
                }
            },
            "sha256 blobs/mount",
            "got 200",
        ),
        v(
            "R107 manifest PUT Location",
            &["image"],
            |q, r| {
                if is(q, "PUT", "/manifests/") && r.status == 201 {
                    r.headers
                        .retain(|(k, _)| !k.eq_ignore_ascii_case("location"));
                }
            },
            "image/push/manifest-by-digest",
            "Location",
        ),
        v(
            "R197 errors envelope",
            &["extra/error bodies"],
            |_, r| {
                if r.status == 404 && !r.body.is_empty() {
                    r.body = br#"{"error":"not found"}"#.to_vec();
                }
            },
            "extra/error bodies/unknown blob",
            "",
        ),
        v(
            "R198 code grammar",
            &["extra/error bodies"],
            |_, r| {
                if r.status == 404 {
                    edit_json(r, |v| {
                        for e in v["errors"].as_array_mut().into_iter().flatten() {
                            e["code"] = e["code"].as_str().unwrap_or("").to_lowercase().into();
                        }
                    });
                }
            },
            "extra/error bodies/unknown blob",
            "",
        ),
        v(
            "R206 Warning too long",
            &["ping"],
            |_, r| {
                r.headers
                    .push(("Warning".into(), format!("299 - \"{}\"", "w".repeat(5000))));
            },
            "ping",
            "Warning",
        ),
        Violation {
            version: "dev",
            ..v(
                "R30 blob GET digest header (dev)",
                &["sha256 blobs/post+put"],
                |q, r| {
                    if is(q, "GET", "/blobs/sha256:") && r.status == 200 {
                        r.headers
                            .retain(|(k, _)| !k.eq_ignore_ascii_case("docker-content-digest"));
                    }
                },
                "sha256 blobs/post+put/blob-get",
                "Docker-Content-Digest",
            )
        },
        v(
            "R20 manifest GET status",
            &["image"],
            |q, r| {
                if is(q, "GET", "/manifests/") && r.status == 200 {
                    r.status = 203;
                }
            },
            // the push reads the manifest back
            "image/push/manifest-by-digest",
            "got 203",
        ),
        v(
            "R172 blob DELETE refused with 403",
            &["sha256 blobs/post+put"],
            |q, r| {
                if is(q, "DELETE", "/blobs/") && r.status == 202 {
                    r.status = 403;
                }
            },
            "sha256 blobs/post+put/blob-delete",
            "got 403",
        ),
    ]
}

fn ferro_violations() -> Vec<Violation> {
    // `empty` finds out whether the registry supports the referrers API.
    const SUBJECTS: &[&str] = &["empty", "artifacts-with-subject"];
    let v = |row, filter, alter, test, because| Violation {
        row,
        ferro: true,
        version: "1.1",
        filter,
        alter,
        test,
        because,
    };
    vec![
        v(
            "R60 monolithic POST Location",
            &["sha256 blobs/post only"],
            |q, r| {
                if is(q, "POST", "/blobs/uploads/") && r.status == 201 {
                    r.headers
                        .retain(|(k, _)| !k.eq_ignore_ascii_case("location"));
                }
            },
            "sha256 blobs/post only",
            "Location",
        ),
        v(
            "R148 referrers Content-Type",
            SUBJECTS,
            |q, r| {
                if is(q, "GET", "/referrers/") && r.status == 200 {
                    set_header(r, "Content-Type", "application/json");
                }
            },
            "artifacts-with-subject/referrers",
            "Content-Type",
        ),
        v(
            "R152 referrer annotations",
            SUBJECTS,
            |q, r| {
                if is(q, "GET", "/referrers/") && r.status == 200 {
                    edit_json(r, |v| {
                        for m in v["manifests"].as_array_mut().into_iter().flatten() {
                            m.as_object_mut().unwrap().remove("annotations");
                        }
                    });
                }
            },
            "artifacts-with-subject/referrers",
            "expected to contain",
        ),
        v(
            "R149 referrer artifactType",
            SUBJECTS,
            |q, r| {
                if is(q, "GET", "/referrers/") && r.status == 200 {
                    edit_json(r, |v| {
                        for m in v["manifests"].as_array_mut().into_iter().flatten() {
                            m["artifactType"] = "application/x-other".into();
                        }
                    });
                }
            },
            "artifacts-with-subject/referrers",
            "artifactType",
        ),
        v(
            "R190 referrers complete",
            SUBJECTS,
            |q, r| {
                if is(q, "GET", "/referrers/") && r.status == 200 {
                    edit_json(r, |v| {
                        if let Some(m) = v["manifests"].as_array_mut() {
                            m.pop();
                        }
                    });
                }
            },
            "artifacts-with-subject/referrers",
            "",
        ),
        v(
            "R119 OCI-Subject",
            SUBJECTS,
            |q, r| {
                if is(q, "PUT", "/manifests/") && r.status == 201 {
                    r.headers
                        .retain(|(k, _)| !k.eq_ignore_ascii_case("oci-subject"));
                }
            },
            "artifacts-with-subject/push",
            "OCI-Subject",
        ),
        v(
            "R75 out-of-order chunk",
            &["sha256 blobs/chunked out-of-order"],
            |q, r| {
                if is(q, "PATCH", "/blobs/uploads/") && r.status == 416 {
                    r.status = 202;
                }
            },
            "sha256 blobs/chunked out-of-order",
            "",
        ),
        v(
            "R44 MANIFEST_BLOB_UNKNOWN",
            &["extra/manifests"],
            |q, r| {
                if is(q, "PUT", "/manifests/") && r.status == 404 {
                    r.body = br#"{"errors":[{"code":"BLOB_UNKNOWN","message":"x"}]}"#.to_vec();
                }
            },
            "extra/manifests/dangling reference",
            "MANIFEST_BLOB_UNKNOWN",
        ),
        v(
            "R146 referrers of an invalid digest",
            &["empty", "extra/referrers"],
            |q, r| {
                if is(q, "GET", "/referrers/") && r.status == 400 {
                    r.status = 404;
                }
            },
            "extra/referrers/invalid digest",
            "got 404",
        ),
        v(
            "R151 index referrer with an artifactType",
            &["empty", "extra/referrers"],
            |q, r| {
                if is(q, "GET", "/referrers/") && r.status == 200 {
                    edit_json(r, |v| {
                        for m in v["manifests"].as_array_mut().into_iter().flatten() {
                            if m["mediaType"] == "application/vnd.oci.image.index.v1+json" {
                                m["artifactType"] = "application/x-invented".into();
                            }
                        }
                    });
                }
            },
            "extra/referrers/index without artifactType",
            "",
        ),
        v(
            "R153 referrers of a subject without any",
            &["empty"],
            |q, r| {
                if is(q, "GET", "/referrers/") && r.status == 200 {
                    edit_json(r, |v| {
                        v["manifests"] = serde_json::json!([{
                            "mediaType": "application/vnd.oci.image.manifest.v1+json",
                            "digest": ZEROS,
                            "size": 1
                        }]);
                    });
                }
            },
            "empty/referrers",
            "",
        ),
        v(
            "R157 silent filtering",
            SUBJECTS,
            |q, r| {
                if is(q, "GET", "artifactType=") && r.status == 200 {
                    r.headers
                        .retain(|(k, _)| !k.eq_ignore_ascii_case("oci-filters-applied"));
                }
            },
            "artifacts-with-subject/referrers",
            "",
        ),
        v(
            "R133 tag list n",
            &["extra/tag listing"],
            |q, r| {
                if is(q, "GET", "/tags/list?n=3") && r.status == 200 {
                    edit_json(r, |v| {
                        if let Some(t) = v["tags"].as_array_mut() {
                            t.push("zzz-extra".into());
                        }
                    });
                }
            },
            "extra/tag listing/n",
            "",
        ),
        v(
            "R137 n=0 with a Link",
            &["extra/tag listing"],
            |q, r| {
                if is(q, "GET", "/tags/list?n=0") && r.status == 200 {
                    set_header(r, "Link", "</v2/x/tags/list?n=1>; rel=\"next\"");
                }
            },
            "extra/tag listing/n=0",
            "Link",
        ),
        v(
            "R129 tag order",
            &["extra/tag listing"],
            |q, r| {
                if is(q, "GET", "/tags/list") && r.status == 200 {
                    edit_json(r, |v| {
                        if let Some(t) = v["tags"].as_array_mut() {
                            t.reverse();
                        }
                    });
                }
            },
            "extra/tag listing/order",
            "order",
        ),
        v(
            "R141 last is exclusive",
            &["extra/tag listing"],
            |q, r| {
                if is(q, "GET", "last=") && r.status == 200 {
                    let last = q
                        .path
                        .split("last=")
                        .nth(1)
                        .unwrap_or("")
                        .split('&')
                        .next()
                        .unwrap_or("")
                        .to_string();
                    edit_json(r, |v| {
                        if let Some(t) = v["tags"].as_array_mut() {
                            t.insert(0, last.into());
                        }
                    });
                }
            },
            "extra/tag listing/last and n",
            "",
        ),
        v(
            "R135 Link form",
            &["extra/tag listing"],
            |q, r| {
                if is(q, "GET", "/tags/list?n=") && r.status == 200 && r.get("link").is_some() {
                    set_header(r, "Link", "/v2/x/tags/list?n=2&last=b");
                }
            },
            "extra/tag listing/pagination",
            "Link",
        ),
        v(
            "R59 monolithic POST status",
            &["sha256 blobs/post only"],
            |q, r| {
                if is(q, "POST", "/blobs/uploads/") && r.status == 201 {
                    r.status = 200;
                }
            },
            "sha256 blobs/post only",
            "got 200",
        ),
        v(
            "R145 referrers 404 from a registry that supports them",
            SUBJECTS,
            |q, r| {
                if is(q, "GET", "/referrers/")
                    && r.status == 200
                    && !q.path.contains("artifactType")
                {
                    edit_json(r, |v| {
                        if v["manifests"].as_array().is_some_and(|m| !m.is_empty()) {
                            *v = serde_json::json!({"errors": [{"code": "NAME_UNKNOWN", "message": "x"}]});
                        }
                    });
                    if !r.body.starts_with(b"{\"manifests") && r.body.starts_with(b"{\"errors") {
                        r.status = 404;
                    }
                }
            },
            "artifacts-with-subject/referrers",
            "",
        ),
        v(
            "R147 referrers body",
            SUBJECTS,
            |q, r| {
                if is(q, "GET", "/referrers/") && r.status == 200 {
                    edit_json(r, |v| {
                        v["mediaType"] = "application/vnd.oci.image.manifest.v1+json".into();
                    });
                }
            },
            "artifacts-with-subject/referrers",
            "mediaType",
        ),
        v(
            "R155 referrers Link form",
            SUBJECTS,
            |q, r| {
                if is(q, "GET", "/referrers/") && r.status == 200 {
                    set_header(r, "Link", "/v2/x/referrers/sha256:00?page=2");
                }
            },
            "artifacts-with-subject/referrers",
            "Link",
        ),
        v(
            "R136 n=0 lists tags",
            &["extra/tag listing"],
            |q, r| {
                if is(q, "GET", "/tags/list?n=0") && r.status == 200 {
                    edit_json(r, |v| v["tags"] = serde_json::json!(["a"]));
                }
            },
            "extra/tag listing/n=0",
            "n=0 returned tags",
        ),
        v(
            "R138 n results in order",
            &["extra/tag listing"],
            |q, r| {
                if is(q, "GET", "/tags/list?n=3") && r.status == 200 {
                    edit_json(r, |v| {
                        if let Some(t) = v["tags"].as_array_mut() {
                            t.reverse();
                        }
                    });
                }
            },
            "extra/tag listing/n",
            "in order",
        ),
        v(
            "R144 referrers status",
            SUBJECTS,
            |q, r| {
                if is(q, "GET", "/referrers/")
                    && r.status == 200
                    && !q.path.contains("artifactType")
                {
                    r.status = 500;
                }
            },
            "artifacts-with-subject/referrers",
            "got 500",
        ),
        v(
            "R165 tag DELETE refused with 403",
            &["image"],
            |q, r| {
                if is(q, "DELETE", "/manifests/image") && matches!(r.status, 202 | 400 | 405) {
                    r.status = 403;
                }
            },
            "image/delete/tag-delete",
            "got 403",
        ),
        v(
            // Before the first byte any of no Range, `0--1` and `0-0` passes (ferro answers
            // `0-0`); a range naming bytes that were never sent does not.
            "R84 upload status Range before the first byte",
            &["sha256 blobs/chunked out-of-order"],
            |q, r| {
                if is(q, "GET", "/blobs/uploads/")
                    && r.status == 204
                    && r.get("range") == Some("0-0")
                {
                    set_header(r, "Range", "0-1023");
                }
            },
            "sha256 blobs/chunked out-of-order",
            "header Range",
        ),
        v(
            // A minimum chunk size larger than the blob leaves one chunk: the out-of-order
            // chunk then starts at byte 1 (it used to be the right first chunk).
            "R75 out-of-order chunk of a blob sent in one chunk",
            &["sha256 blobs/chunked out-of-order"],
            |q, r| {
                if is(q, "POST", "/blobs/uploads/") && r.status == 202 {
                    set_header(r, "OCI-Chunk-Min-Length", "5242880");
                }
                if is(q, "PATCH", "/blobs/uploads/") && r.status == 416 {
                    r.status = 202;
                }
            },
            "sha256 blobs/chunked out-of-order",
            "expected status 416, got 202",
        ),
        v(
            // The list is cut without a Link to the rest (R154): referrers are missing.
            "R154 referrers cut without a Link",
            SUBJECTS,
            |q, r| {
                if is(q, "GET", "/referrers/")
                    && r.status == 200
                    && !q.path.contains("artifactType")
                {
                    edit_json(r, |v| {
                        if let Some(m) = v["manifests"].as_array_mut() {
                            m.truncate(1);
                        }
                    });
                }
            },
            "artifacts-with-subject/referrers",
            "expected to contain",
        ),
    ]
}

/// Runs the tests matching `filter` of pack `version` through `addr`.
fn run_matrix(
    addr: &str,
    filter: &[&str],
    version: &str,
) -> (std::process::Output, serde_json::Value) {
    let out = TempDir::new("matrix");
    let mut args = vec!["-q", "--spec-version", version];
    for f in filter {
        args.extend(["--filter", f]);
    }
    run_against(addr, &out.0, &args, &[])
}

/// Runs each violation through a proxy in front of a real registry and lists those the suite
/// missed (no FAIL where expected, or a reason that does not say what was wrong).
fn missed(violations: Vec<Violation>) -> Vec<String> {
    let reg = if violations.iter().any(|v| v.ferro) {
        Registry::ferro()
    } else {
        Registry::docker()
    };
    let current: Arc<Mutex<Option<Alter>>> = Arc::default();
    let pick = current.clone();
    let proxy = FakeServer::proxy(&reg.addr, move |req, mut resp| {
        if let Some(alter) = *pick.lock().unwrap() {
            alter(req, &mut resp);
        }
        if resp.get(BODY_ON_HEAD).is_some() {
            return Action::BodyOnHead(resp.without(BODY_ON_HEAD));
        }
        Action::Respond(resp)
    });
    let mut missed = Vec::new();
    let only = std::env::var("MATRIX_ONLY").unwrap_or_default();
    let violations: Vec<Violation> = violations
        .into_iter()
        .filter(|v| v.row.contains(&only))
        .collect();
    // Without a violation, none of the tests a violation must fail fails: a FAIL under a
    // violation is then the violation's doing.
    let mut baselines: Vec<(&[&str], &str)> = Vec::new();
    for v in &violations {
        if !baselines.contains(&(v.filter, v.version)) {
            baselines.push((v.filter, v.version));
        }
    }
    for (filter, version) in baselines {
        *current.lock().unwrap() = None;
        let r = run_matrix(&proxy.addr, filter, version).1;
        for v in violations
            .iter()
            .filter(|v| v.filter == filter && v.version == version)
        {
            for t in r["tests"].as_array().unwrap() {
                let id = t["id"].as_str().unwrap();
                if id.starts_with(v.test) && t["status"] == "FAIL" {
                    missed.push(format!(
                        "{}: {id} fails without the violation: {}",
                        v.row, t["reason"]
                    ));
                }
            }
        }
    }
    for v in violations {
        *current.lock().unwrap() = Some(v.alter);
        let (o, r) = run_matrix(&proxy.addr, v.filter, v.version);
        if std::env::var("MATRIX_DEBUG").is_ok() {
            eprintln!("{}", common::text(&o));
        }
        let fails: Vec<(String, String)> = r["tests"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["status"] == "FAIL" && t["id"].as_str().unwrap().starts_with(v.test))
            .map(|t| {
                (
                    t["id"].as_str().unwrap().to_string(),
                    t["reason"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect();
        let caught =
            o.status.code() == Some(4) && fails.iter().any(|(_, why)| why.contains(v.because));
        eprintln!("{}: {:?}", v.row, fails.first());
        if std::env::var("MATRIX_DEBUG").is_ok() {
            for t in r["tests"].as_array().unwrap() {
                if t["id"].as_str().unwrap().starts_with(v.test) {
                    eprintln!("   {} {} {}", t["id"], t["status"], t["reason"]);
                }
            }
        }
        if !caught {
            missed.push(format!("{} ({}): {fails:?}", v.row, v.test));
        }
    }
    missed
}

#[test]
fn every_injected_violation_fails_a_test_on_docker_registry() {
    let missed = missed(violations());
    assert!(missed.is_empty(), "missed:\n{}", missed.join("\n"));
}

#[test]
fn every_injected_referrers_violation_fails_a_test_on_ferro() {
    let missed = missed(ferro_violations());
    assert!(missed.is_empty(), "missed:\n{}", missed.join("\n"));
}
