//! Certificates replaced while serving: new connections get the new files,
//! open ones keep theirs, and files that do not load keep the last good
//! configuration.

use groupd::pb;

use super::*;
use crate::helpers::tls::{ClientNames, replace};

/// Reloads often, so that the scenarios wait little.
const RELOAD: [&str; 2] = ["--tls-reload-interval", "100ms"];

/// Waits until a new connection to `addr` is served `expected`.
async fn await_certificate(addr: SocketAddr, ca: &Ca, expected: &CertificateDer<'static>) {
    let reloaded = tokio::time::timeout(HANG_GUARD, async {
        loop {
            if let Ok(served) = served_certificate(addr, ca).await
                && &served == expected
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(
        reloaded.is_ok(),
        "{addr} was not served the new certificate"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_server_certificate_is_served_to_new_connections() {
    let pki = Pki::new(&[]);
    run_launched_scenario(&pki.flags(&RELOAD), |server| async move {
        for addr in [server.addr, server.http_addr] {
            assert_eq!(
                served_certificate(addr, &pki.ca).await.unwrap(),
                pki.server.der
            );
        }
        let mut before = tls_client(server.addr, &pki.ca).await;
        before
            .list_groups(pb::ListGroupsRequest::default())
            .await
            .unwrap();

        let second = pki.ca.localhost();
        assert_ne!(second.der, pki.server.der);
        pki.dir.write_server(&second);
        for addr in [server.addr, server.http_addr] {
            await_certificate(addr, &pki.ca, &second.der).await;
        }
        let mut after = tls_client(server.addr, &pki.ca).await;
        after
            .list_groups(pb::ListGroupsRequest::default())
            .await
            .unwrap();
        // The connection opened before the change goes on.
        before
            .list_groups(pb::ListGroupsRequest::default())
            .await
            .unwrap();

        // A certificate file that does not parse, then a key that is not
        // the certificate's: the last good pair is still served.
        replace(&pki.dir.cert(), b"not a certificate");
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(
            served_certificate(server.addr, &pki.ca).await.unwrap(),
            second.der
        );
        let third = pki.ca.localhost();
        replace(&pki.dir.cert(), third.cert_pem.as_bytes());
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(
            served_certificate(server.http_addr, &pki.ca).await.unwrap(),
            second.der
        );
        // Fixed: the new pair is served.
        replace(&pki.dir.key(), third.key_pem.as_bytes());
        for addr in [server.addr, server.http_addr] {
            await_certificate(addr, &pki.ca, &third.der).await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_client_ca_verifies_new_connections() {
    let old_ca = Ca::new("old client CA");
    let new_ca = Ca::new("new client CA");
    let pki = Pki::new(&[&old_ca]);
    run_launched_scenario(&pki.flags(&RELOAD), |server| async move {
        let names = ClientNames {
            common_name: Some("client"),
            ..Default::default()
        };
        let called = |identity: Leaf| {
            let ca = &pki.ca;
            async move {
                let channel = tls_channel(server.addr, ca, Some(&identity))
                    .await
                    .map_err(|e| e.to_string())?;
                GroupServiceClient::new(channel)
                    .list_groups(pb::ListGroupsRequest::default())
                    .await
                    .map(|_| ())
                    .map_err(|status| status.to_string())
            }
        };
        assert!(called(old_ca.client(&names)).await.is_ok());
        assert!(called(new_ca.client(&names)).await.is_err());

        pki.dir.write_client_ca(&[&new_ca]);
        let reloaded = tokio::time::timeout(HANG_GUARD, async {
            while called(new_ca.client(&names)).await.is_err() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await;
        assert!(reloaded.is_ok(), "the new client CA was not loaded");
        assert!(
            called(old_ca.client(&names)).await.is_err(),
            "the old client CA still verifies"
        );
    })
    .await;
}
