//! The foundation's HTTP acceptance tests: real sockets, real compiled components.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::{TestHost, client};
use trellis_host::ComponentLimits;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hello_answers_200_concurrent_requests() {
    let host = TestHost::start().await;
    let hello = host.load_guest("http_hello", &[], ComponentLimits::default());
    host.route(None, "/", hello);
    let client = client();
    let requests = (0..200).map(|i| {
        let client = client.clone();
        let url = host.url(&format!("/hello/{i}"));
        tokio::spawn(async move {
            let response = client.get(url).send().await.unwrap();
            (response.status().as_u16(), response.text().await.unwrap())
        })
    });
    let results = futures_join_all(requests).await;
    assert_eq!(results.len(), 200);
    for (status, body) in results {
        assert_eq!(status, 200);
        assert_eq!(body, "Hello from Trellis!\n");
    }
}

async fn futures_join_all<T: Send + 'static>(
    handles: impl Iterator<Item = tokio::task::JoinHandle<T>>,
) -> Vec<T> {
    let mut out = Vec::new();
    for handle in handles.collect::<Vec<_>>() {
        out.push(handle.await.unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_components_share_one_listener_by_path_and_host() {
    let host = TestHost::start().await;
    let hello = host.load_guest("http_hello", &[], ComponentLimits::default());
    let echo = host.load_guest("echo", &[], ComponentLimits::default());
    host.route(None, "/", hello);
    host.route(None, "/echo", echo.clone());
    host.route(Some("echo.test"), "/", echo);
    let client = client();

    let root = client
        .post(host.url("/anything"))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(root.text().await.unwrap(), "Hello from Trellis!\n");
    let by_path = client
        .post(host.url("/echo/1"))
        .body("ping")
        .send()
        .await
        .unwrap();
    assert_eq!(by_path.text().await.unwrap(), "ping");
    let by_host = client
        .post(host.url("/anything"))
        .header("host", "echo.test")
        .body("pong")
        .send()
        .await
        .unwrap();
    assert_eq!(by_host.text().await.unwrap(), "pong");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unrouted_requests_get_404_naming_the_path() {
    let host = TestHost::start().await;
    let hello = host.load_guest("http_hello", &[], ComponentLimits::default());
    host.route(None, "/only", hello);
    let response = client().get(host.url("/elsewhere")).send().await.unwrap();
    assert_eq!(response.status(), 404);
    assert!(response.text().await.unwrap().contains("/elsewhere"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_bodies_stream_through_in_both_directions() {
    let host = TestHost::start().await;
    let echo = host.load_guest("echo", &[], ComponentLimits::default());
    host.route(None, "/", echo);
    // 24 MiB: far beyond any small buffer, and beyond the 16 MiB memory limit below, so the
    // body cannot have been held whole in the guest.
    let body: Vec<u8> = (0..24 << 20).map(|i: u32| (i % 251) as u8).collect();
    let host_limited = TestHost::start().await;
    let limits = ComponentLimits {
        memory_bytes: 16 << 20,
        ..ComponentLimits::default()
    };
    let echo_small = host_limited.load_guest("echo", &[], limits);
    host_limited.route(None, "/", echo_small);
    for url in [host.url("/"), host_limited.url("/")] {
        let response = client().post(url).body(body.clone()).send().await.unwrap();
        assert_eq!(response.status(), 200);
        let echoed = response.bytes().await.unwrap();
        assert_eq!(echoed.len(), body.len());
        assert!(echoed == body, "echoed body differs");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_infinite_loop_gets_504_at_its_deadline_while_others_keep_answering() {
    let host = TestHost::start().await;
    let deadline = Duration::from_secs(2);
    let looping = host.load_guest(
        "busy_loop",
        &[],
        ComponentLimits {
            deadline,
            ..ComponentLimits::default()
        },
    );
    let hello = host.load_guest("http_hello", &[], ComponentLimits::default());
    host.route(None, "/loop", looping);
    host.route(None, "/", hello);
    let client = client();

    let started = Instant::now();
    let spinning = tokio::spawn({
        let client = client.clone();
        let url = host.url("/loop");
        async move {
            let response = client.get(url).send().await.unwrap();
            (response.status().as_u16(), response.text().await.unwrap())
        }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Two loops at once would occupy both worker threads without yielding; the host must
    // still answer others while they spin.
    let second_spinner = tokio::spawn(client.get(host.url("/loop")).send());
    for _ in 0..20 {
        let response = client.get(host.url("/")).send().await.unwrap();
        assert_eq!(response.status(), 200);
    }
    assert!(
        !spinning.is_finished(),
        "the other component answered only after the loop ended ({:?} after it started)",
        started.elapsed()
    );
    let (status, body) = spinning.await.unwrap();
    let elapsed = started.elapsed();
    assert_eq!(status, 504, "{body}");
    assert!(
        body.contains("busy_loop") && body.contains("deadline"),
        "{body}"
    );
    assert!(
        elapsed >= deadline,
        "answered before the deadline: {elapsed:?}"
    );
    // Generous bound: the point is that it ends, not how fast.
    assert!(elapsed < deadline + Duration::from_secs(10), "{elapsed:?}");
    assert_eq!(second_spinner.await.unwrap().unwrap().status(), 504);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn growing_memory_past_the_limit_traps_without_hurting_the_host() {
    let host = TestHost::start().await;
    let hog = host.load_guest(
        "memory_hog",
        &[],
        ComponentLimits {
            memory_bytes: 32 << 20,
            ..ComponentLimits::default()
        },
    );
    let hello = host.load_guest("http_hello", &[], ComponentLimits::default());
    host.route(None, "/hog", hog);
    host.route(None, "/", hello);
    let client = client();
    for _ in 0..3 {
        let response = client.get(host.url("/hog")).send().await.unwrap();
        assert_eq!(response.status(), 500);
        let body = response.text().await.unwrap();
        assert!(
            body.contains("memory_hog") && body.contains("trapped"),
            "{body}"
        );
        let ok = client.get(host.url("/")).send().await.unwrap();
        assert_eq!(ok.status(), 200);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_limit_queues_requests_instead_of_failing_them() {
    let host = TestHost::start().await;
    let hello = host.load_guest(
        "http_hello",
        &[],
        ComponentLimits {
            max_concurrent: 2,
            ..ComponentLimits::default()
        },
    );
    host.route(None, "/", hello);
    let client = client();
    let requests: Vec<_> = (0..50)
        .map(|_| tokio::spawn(client.get(host.url("/")).send()))
        .collect();
    for r in requests {
        assert_eq!(r.await.unwrap().unwrap().status(), 200);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_component_answers_503_after_waiting_its_deadline() {
    let host = TestHost::start().await;
    let looping = host.load_guest(
        "busy_loop",
        &[],
        ComponentLimits {
            max_concurrent: 1,
            deadline: Duration::from_secs(1),
            ..ComponentLimits::default()
        },
    );
    host.route(None, "/", looping);
    let client = client();
    let first = tokio::spawn(client.get(host.url("/")).send());
    tokio::time::sleep(Duration::from_millis(100)).await;
    let second = client.get(host.url("/")).send().await.unwrap();
    let statuses = [
        first.await.unwrap().unwrap().status().as_u16(),
        second.status().as_u16(),
    ];
    assert!(statuses.contains(&504), "{statuses:?}");
    // The second waited for the only slot; it either got it late and hit its own deadline
    // (504), or never got it (503). Both are 5xx with a message, none hangs.
    assert!(
        statuses.iter().all(|s| *s == 503 || *s == 504),
        "{statuses:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trap_after_the_response_head_breaks_the_body_instead_of_ending_it_cleanly() {
    let host = TestHost::start().await;
    let broken = host.load_guest("trap_mid_body", &[], ComponentLimits::default());
    let hello = host.load_guest("http_hello", &[], ComponentLimits::default());
    host.route(None, "/", broken);
    host.route(None, "/hello", hello);
    // Depending on timing the connection breaks before or after the head reaches the client;
    // either way the client must see an error, never a clean end of a truncated body.
    let outcome = match client().get(host.url("/")).send().await {
        Ok(response) => response.bytes().await.map(|b| b.len()),
        Err(e) => Err(e),
    };
    assert!(
        outcome.is_err(),
        "a truncated body looked complete: {outcome:?}"
    );
    // And the host goes on serving.
    let again = client().get(host.url("/hello")).send().await.unwrap();
    assert_eq!(again.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stalls_mid_upload_cannot_hold_an_instance_past_the_deadline() {
    use tokio::io::AsyncWriteExt;
    let host = TestHost::start().await;
    let echo = host.load_guest(
        "echo",
        &[],
        ComponentLimits {
            max_concurrent: 1,
            deadline: Duration::from_secs(1),
            ..ComponentLimits::default()
        },
    );
    host.route(None, "/", echo);
    // Headers promise 1 MiB, then the client goes silent with the only slot taken.
    let mut stalled = tokio::net::TcpStream::connect(host.server.local_addr())
        .await
        .unwrap();
    stalled
        .write_all(b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 1048576\r\n\r\npartial")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    // The stalled invocation is ended at its deadline, freeing the slot for this one.
    let response = client()
        .post(host.url("/"))
        .body("after the stall")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "after the stall");
    drop(stalled);
}
