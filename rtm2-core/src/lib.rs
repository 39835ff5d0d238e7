//! rtm2-core: the rtm2 SDK in Rust — [`Client`], [`StreamChannel`], events — on its own
//! runtime, talking to `rtm2-server` over the rtm2 protocol (embedded in-process by default).
//!
//! ```no_run
//! use rtm2_core::{Client, ClientConfig, PublishOptions, SubscribeOptions};
//! # async fn demo() -> rtm2_core::Result<()> {
//! let alice = Client::new(ClientConfig::new("0123456789abcdef0123456789abcdef", "alice"))?;
//! alice.login("").await?;               // embedded server, development mode: no token needed
//! let mut room = alice.subscribe("room", SubscribeOptions::default()).await?;
//! alice.publish("room", "hello", PublishOptions::default()).await?;
//! let msg = room.recv().await.unwrap().unwrap();
//! assert_eq!(msg.text(), Some("hello"));
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

mod client;
mod config;
pub mod embedded;
mod error;
mod events;
mod link;
pub mod logging;
mod runtime;
mod stream_channel;
mod types;

/// Version of the SDK (the workspace version).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

pub use client::Client;
pub use config::{ClientConfig, Endpoint};
pub use error::{Error, Result};
pub use events::{EventReceiver, Subscription};
pub use runtime::{Op, block_on, runtime};
pub use stream_channel::StreamChannel;
pub use types::*;

pub use rtm2_proto::ErrorCode;
pub use rtm2_proto::enums::{
    ChannelType, LinkOperation, LinkState, LinkStateChangeReason, MessagePriority, MessageQos, MessageType,
    ServiceType, TopicEventType,
};
