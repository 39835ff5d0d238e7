//! `RTM2_ENDPOINT`: the endpoint of a client given none. Environment variables are process-wide,
//! so this file (its own test binary) has one test that sets it step by step.

mod common;

use common::*;
use rtm2_core::*;

#[tokio::test]
async fn a_client_given_no_endpoint_uses_rtm2_endpoint() {
    let server = rtm2_server::Server::start(Default::default());
    let addr = server.listen_tcp("127.0.0.1:0").await.unwrap();
    let watcher = client_on(&server, "watcher");
    watcher.login("").await.unwrap();

    // SAFETY (here and below): this binary's only test; nothing else reads the environment.
    unsafe { std::env::set_var(ENDPOINT_ENV, format!("tcp://{addr}")) };
    let alice = Client::new(ClientConfig::new(APP_ID, "alice")).unwrap();
    alice.login("").await.unwrap();
    assert_eq!(alice.connected_to().unwrap().0, format!("tcp://{addr}"));
    // The server of the variable has her (not the embedded one).
    alice.subscribe("room", SubscribeOptions::default()).await.unwrap();
    let who = watcher.presence().who_now("room", ChannelType::MESSAGE, Default::default()).await.unwrap();
    assert!(who.occupants.iter().any(|u| u.user_id == "alice"), "{who:?}");
    alice.logout().await.unwrap();

    // "" given (a binding's "no endpoint") is the default too; "embedded" given is embedded.
    let bob = Client::new(ClientConfig::new(APP_ID, "bob").endpoints(Endpoint::parse_list("").unwrap())).unwrap();
    bob.login("").await.unwrap();
    assert_eq!(bob.connected_to().unwrap().0, format!("tcp://{addr}"));
    bob.logout().await.unwrap();
    let carol =
        Client::new(ClientConfig::new(APP_ID, "carol").endpoints(Endpoint::parse_list("embedded").unwrap())).unwrap();
    carol.login("").await.unwrap();
    assert_eq!(carol.connected_to().unwrap().0, "embedded");
    carol.logout().await.unwrap();

    // An invalid value fails client creation, naming the variable.
    for bad in ["nonsense", "tcp:/127.0.0.1:1", "a:1,embedded"] {
        unsafe { std::env::set_var(ENDPOINT_ENV, bad) };
        let e = Client::new(ClientConfig::new(APP_ID, "dan")).err().unwrap_or_else(|| panic!("{bad:?} accepted"));
        assert_eq!(e.code, ErrorCode::INVALID_PARAMETER, "{e}");
        assert!(e.to_string().contains("RTM2_ENDPOINT"), "{bad:?}: {e}");
    }
    // Empty: the embedded server.
    unsafe { std::env::set_var(ENDPOINT_ENV, "") };
    let erin = Client::new(ClientConfig::new(APP_ID, "erin")).unwrap();
    erin.login("").await.unwrap();
    assert_eq!(erin.connected_to().unwrap().0, "embedded");
    erin.logout().await.unwrap();
}
