//! `groupd openapi` prints the OpenAPI document of the HTTP/JSON API on
//! stdout and exits, without opening the database or logging.

use std::process::Command;

#[test]
fn groupd_openapi_prints_the_document_and_touches_no_database() {
    let directory = std::env::temp_dir().join(format!("groupd-openapi-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&directory).unwrap();
    let database = directory.join("groupd.db");
    let output = Command::new(env!("CARGO_BIN_EXE_groupd"))
        .arg("openapi")
        .env(
            "GROUPD_DATABASE_URL",
            format!("sqlite://{}", database.display()),
        )
        .env_remove("GROUPD_LOG")
        .output()
        .expect("groupd runs");
    assert!(output.status.success(), "{output:?}");
    assert!(
        output.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let printed: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(printed, groupd::http::openapi::contract_document().unwrap());
    let created = database.exists();
    std::fs::remove_dir_all(&directory).unwrap();
    assert!(!created, "the database was created");
}
