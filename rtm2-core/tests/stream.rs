//! Stream channels and topics.

mod common;

use common::*;
use rtm2_core::*;

fn topic_events(ev: &Event, t: TopicEventType) -> Option<std::sync::Arc<TopicEvent>> {
    match ev {
        Event::Topic(e) if e.event_type == t => Some(e.clone()),
        _ => None,
    }
}

#[tokio::test]
async fn quick_start_flow() {
    let server = dev_server();
    let alice = client_on(&server, "alice");
    let bob = client_on(&server, "bob");
    alice.login("").await.unwrap();
    bob.login("").await.unwrap();
    let mut bob_events = bob.events();
    let mut alice_events = alice.events();

    let a_stage = alice.stream_channel("stage").unwrap();
    let b_stage = bob.stream_channel("stage").unwrap();
    assert!(a_stage == alice.stream_channel("stage").unwrap());
    assert!(a_stage != bob.stream_channel("stage").unwrap());

    let joined = a_stage.join(JoinOptions::default()).await.unwrap();
    assert!(joined.topics.is_empty());
    a_stage.join_topic("slides", JoinTopicOptions { meta: "presenter".into(), ..Default::default() }).await.unwrap();

    let joined = b_stage.join(JoinOptions::default()).await.unwrap();
    assert_eq!(joined.topics.len(), 1);
    assert_eq!(joined.topics[0].topic, "slides");
    assert_eq!(joined.topics[0].publishers, vec![PublisherInfo { user_id: "alice".into(), meta: "presenter".into() }]);
    let snap =
        expect_event(&mut bob_events, "topic snapshot", |e| topic_events(e, TopicEventType::SNAPSHOT).is_some()).await;
    assert!(matches!(snap, Event::Topic(t) if t.channel == "stage" && t.topics.len() == 1));

    // Bob publishes in a topic too; Alice sees REMOTE_JOIN with the meta.
    b_stage.join_topic("chat", JoinTopicOptions { meta: "m-b".into(), ..Default::default() }).await.unwrap();
    let ev = expect_event(&mut alice_events, "remote join", |e| topic_events(e, TopicEventType::REMOTE_JOIN).is_some())
        .await;
    let Event::Topic(t) = ev else { unreachable!() };
    assert_eq!((t.publisher.as_str(), t.topics[0].topic.as_str()), ("bob", "chat"));
    assert_eq!(t.topics[0].publishers[0].meta, "m-b");

    // Subscribe with an empty list: every current publisher.
    let r = b_stage.subscribe_topic("slides", &[]).await.unwrap();
    assert_eq!(r.succeeded, vec!["alice".to_string()]);
    assert!(r.failed.is_empty());
    assert_eq!(b_stage.subscribed_users("slides").unwrap(), vec!["alice".to_string()]);

    a_stage
        .publish_topic("slides", "slide 1", TopicMessageOptions { custom_type: "page".into(), send_ts: 0 })
        .await
        .unwrap();
    let m = expect_message(&mut bob_events, |m| m.channel_type == ChannelType::STREAM).await;
    assert_eq!((m.channel.as_str(), m.topic.as_str(), m.publisher.as_str()), ("stage", "slides", "alice"));
    assert_eq!(m.text(), Some("slide 1"));
    assert_eq!(m.custom_type, "page");

    // Only subscribers that picked this publisher receive: Alice did not subscribe to "chat".
    b_stage.publish_topic("chat", "nobody listens", TopicMessageOptions::default()).await.unwrap();
    a_stage.subscribe_topic("chat", &["bob"]).await.unwrap();
    b_stage.publish_topic("chat", "now alice listens", TopicMessageOptions::default()).await.unwrap();
    let m = expect_message(&mut alice_events, |m| m.channel_type == ChannelType::STREAM).await;
    assert_eq!(m.text(), Some("now alice listens"));

    // Ordered delivery per publisher.
    for i in 0..200 {
        a_stage.publish_topic("slides", format!("s{i}"), TopicMessageOptions::default()).await.unwrap();
    }
    for i in 0..200 {
        let m = expect_message(&mut bob_events, |m| m.channel_type == ChannelType::STREAM).await;
        assert_eq!(m.text(), Some(format!("s{i}").as_str()));
    }

    b_stage.unsubscribe_topic("slides", &[]).await.unwrap();
    assert_eq!(b_stage.subscribed_users("slides").unwrap(), Vec::<String>::new(), "no subscription: an empty list");
    assert_eq!(
        b_stage.unsubscribe_topic("slides", &[]).await.unwrap_err().code,
        ErrorCode::CHANNEL_TOPIC_NOT_SUBSCRIBED
    );

    a_stage.leave_topic("slides").await.unwrap();
    let ev = expect_event(&mut bob_events, "remote leave", |e| topic_events(e, TopicEventType::REMOTE_LEAVE).is_some())
        .await;
    assert!(matches!(ev, Event::Topic(t) if t.publisher == "alice" && t.topics[0].topic == "slides"));
    assert_eq!(a_stage.leave_topic("slides").await.unwrap_err().code, ErrorCode::CHANNEL_TOPIC_NOT_JOINED);
    assert_eq!(
        a_stage.publish_topic("slides", "x", TopicMessageOptions::default()).await.unwrap_err().code,
        ErrorCode::CHANNEL_TOPIC_NOT_JOINED
    );

    // Leaving drops Bob's topic role: Alice sees REMOTE_LEAVE for "chat".
    b_stage.leave().await.unwrap();
    let ev = expect_event(&mut alice_events, "remote leave on channel leave", |e| {
        topic_events(e, TopicEventType::REMOTE_LEAVE).is_some()
    })
    .await;
    assert!(matches!(ev, Event::Topic(t) if t.publisher == "bob" && t.topics[0].topic == "chat"));
    assert_eq!(b_stage.leave().await.unwrap_err().code, ErrorCode::CHANNEL_NOT_JOINED);
    assert_eq!(
        b_stage.join_topic("t", JoinTopicOptions::default()).await.unwrap_err().code,
        ErrorCode::CHANNEL_NOT_JOINED
    );
    a_stage.leave().await.unwrap();
    alice.logout().await.unwrap();
    bob.logout().await.unwrap();
}

#[tokio::test]
async fn topic_limits() {
    let server = dev_server();
    let alice = client_on(&server, "alice");
    alice.login("").await.unwrap();
    let sc = alice.stream_channel("limits").unwrap();
    sc.join(JoinOptions::default()).await.unwrap();
    assert_eq!(sc.join(JoinOptions::default()).await.unwrap_err().code, ErrorCode::DUPLICATE_OPERATION);
    for i in 0..8 {
        sc.join_topic(&format!("t{i}"), JoinTopicOptions::default()).await.unwrap();
    }
    assert_eq!(
        sc.join_topic("t8", JoinTopicOptions::default()).await.unwrap_err().code,
        ErrorCode::CHANNEL_EXCEED_TOPIC_LIMITATION
    );
    assert_eq!(
        sc.join_topic("t0", JoinTopicOptions::default()).await.unwrap_err().code,
        ErrorCode::CHANNEL_JOIN_TOPIC_FAILED
    );
    assert_eq!(
        sc.join_topic(&"x".repeat(17), JoinTopicOptions::default()).await.unwrap_err().code,
        ErrorCode::CHANNEL_INVALID_TOPIC_NAME
    );
    let meta = JoinTopicOptions { meta: "m".repeat(257), ..Default::default() };
    assert_eq!(sc.join_topic("m", meta).await.unwrap_err().code, ErrorCode::CHANNEL_INVALID_TOPIC_META);
    let big = vec![1u8; 1024];
    sc.publish_topic("t0", big.clone(), TopicMessageOptions::default()).await.unwrap();
    let over = TopicMessageOptions { custom_type: "x".into(), send_ts: 0 };
    assert_eq!(
        sc.publish_topic("t0", big, over).await.unwrap_err().code,
        ErrorCode::CHANNEL_MESSAGE_LENGTH_EXCEED_LIMITATION
    );
    assert_eq!(sc.subscribe_topic("nobody-here", &[]).await.unwrap_err().code, ErrorCode::CHANNEL_TOPIC_NOT_EXIST);

    // 64 publishers per topic: the 65th fails per user, a 66th call fails as a whole.
    let users: Vec<String> = (0..65).map(|i| format!("u{i}")).collect();
    let refs: Vec<&str> = users.iter().map(String::as_str).collect();
    let r = sc.subscribe_topic("big", &refs).await.unwrap();
    assert_eq!(r.succeeded.len(), 64);
    assert_eq!(r.failed.len(), 1);
    assert_eq!(r.failed[0].user_id, "u64");
    assert_eq!(r.failed[0].code, 20003);
    assert_eq!(
        sc.subscribe_topic("big", &["u99"]).await.unwrap_err().code,
        ErrorCode::CHANNEL_EXCEED_TOPIC_USER_LIMITATION
    );
    // Incremental and idempotent for users already subscribed; invalid ids fail per user.
    let r = sc.subscribe_topic("other", &["a", "_bad"]).await.unwrap();
    assert_eq!(r.succeeded, vec!["a".to_string()]);
    assert_eq!(r.failed[0].code, 6);
    let r = sc.subscribe_topic("other", &["a", "b"]).await.unwrap();
    assert_eq!(r.succeeded, vec!["a".to_string(), "b".to_string()]);
    assert_eq!(sc.subscribed_users("other").unwrap(), vec!["a".to_string(), "b".to_string()]);
    sc.unsubscribe_topic("other", &["a"]).await.unwrap();
    assert_eq!(sc.subscribed_users("other").unwrap(), vec!["b".to_string()]);

    // 10 stream channels per client.
    let mut chans = Vec::new();
    for i in 1..10 {
        let c = alice.stream_channel(&format!("s{i}")).unwrap();
        c.join(JoinOptions::default()).await.unwrap();
        chans.push(c);
    }
    let e = alice.stream_channel("s10").unwrap().join(JoinOptions::default()).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::CHANNEL_INSTANCE_EXCEED_LIMITATION);
}

#[tokio::test]
async fn message_and_stream_channels_are_separate_namespaces() {
    let server = dev_server();
    let a = client_on(&server, "a");
    let b = client_on(&server, "b");
    a.login("").await.unwrap();
    b.login("").await.unwrap();
    let mut sub = b.subscribe("same", SubscribeOptions::default()).await.unwrap();
    let sa = a.stream_channel("same").unwrap();
    let sb = b.stream_channel("same").unwrap();
    sa.join(JoinOptions::default()).await.unwrap();
    sb.join(JoinOptions::default()).await.unwrap();
    sa.join_topic("t", JoinTopicOptions::default()).await.unwrap();
    sb.subscribe_topic("t", &["a"]).await.unwrap();
    sa.publish_topic("t", "topic msg", TopicMessageOptions::default()).await.unwrap();
    a.publish("same", "channel msg", PublishOptions::default()).await.unwrap();
    // The message-channel subscription sees only the message-channel message.
    let m = next_message(&mut sub).await;
    assert_eq!((m.text(), m.channel_type), (Some("channel msg"), ChannelType::MESSAGE));
}
