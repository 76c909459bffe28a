//! `examples/chat.rs`, the chat ferry grew out of, run as two processes
//! over loopback with both sides scripted.

#[test]
fn chat_both_ways() {
    ferry_app::testing::chat("chat-tokio");
}
