//! The TLS handshake is bounded like a request's headers: it must end
//! within `--http-header-timeout` of the accept, and a connection in its
//! handshake holds one of the port's `--max-connections`.

use std::time::Instant;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::*;

/// Reads until the server closes `tcp`; how long after `started` that
/// was.
async fn closed_after(mut tcp: TcpStream, started: Instant) -> Duration {
    let mut sink = Vec::new();
    let closed = tokio::time::timeout(HANG_GUARD, tcp.read_to_end(&mut sink)).await;
    assert!(closed.is_ok(), "the connection was left open");
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handshake_not_done_within_the_header_timeout_is_closed() {
    let pki = Pki::new(&[]);
    let flags = pki.flags(&["--http-header-timeout", "1s"]);
    run_launched_scenario(&flags, |server| async move {
        for addr in [server.addr, server.http_addr] {
            // Silent, and a ClientHello's first bytes and no more.
            let started = Instant::now();
            let silent = TcpStream::connect(addr).await.unwrap();
            let mut partial = TcpStream::connect(addr).await.unwrap();
            partial
                .write_all(&[0x16, 0x03, 0x01, 0x02, 0x00])
                .await
                .unwrap();
            for (what, tcp) in [("silent", silent), ("partial", partial)] {
                let waited = closed_after(tcp, started).await;
                assert!(
                    waited >= Duration::from_millis(800),
                    "{addr} {what}: closed after {waited:?}, before the header timeout"
                );
                assert!(
                    waited < Duration::from_secs(10),
                    "{addr} {what}: still open {waited:?} after a header timeout of 1s"
                );
            }
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_in_its_handshake_holds_a_connection_slot() {
    let pki = Pki::new(&[]);
    let flags = pki.flags(&["--max-connections", "1", "--http-header-timeout", "2s"]);
    run_launched_scenario(&flags, |server| async move {
        // The only slot, held by a connection that never says hello.
        let holder = TcpStream::connect(server.addr).await.unwrap();
        let held = tokio::spawn(closed_after(holder, Instant::now()));
        tokio::time::sleep(Duration::from_millis(100)).await;
        let started = Instant::now();
        let stream = tls_connect(server.addr, &pki.ca, None, &["h2"]).await;
        let waited = started.elapsed();
        assert!(stream.is_ok(), "{stream:?}");
        assert!(
            waited >= Duration::from_secs(1),
            "the handshake ran beside the held slot (after {waited:?})"
        );
        held.await.unwrap();
    })
    .await;
}
