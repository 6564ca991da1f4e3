//! Acting from chat (Telegram, Slack): the buttons a notification carries for what the state
//! allows, what each one asks of Apiary, and how a button names its action and task in the
//! few bytes a chat platform hands back (Telegram's `callback_data` holds 64).

use crate::state::{AgentStatus, NotifyEvent};

/// The chat a human acted from; shown in the audit trail as "via Telegram".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Via {
    Telegram,
    Slack,
}

impl Via {
    /// The name stored and sent on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Via::Telegram => "telegram",
            Via::Slack => "slack",
        }
    }

    /// The name people read.
    pub fn label(self) -> &'static str {
        match self {
            Via::Telegram => "Telegram",
            Via::Slack => "Slack",
        }
    }

    /// Parses [`Via::as_str`].
    pub fn parse(s: &str) -> Option<Via> {
        match s {
            "telegram" => Some(Via::Telegram),
            "slack" => Some(Via::Slack),
            _ => None,
        }
    }
}

/// What a chat button asks for; each is the same action as its HTTP route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChatAction {
    Approve,
    Revise,
    Merge,
    RequestChanges,
    Retry,
    Cancel,
}

const ALL: [ChatAction; 6] = [
    ChatAction::Approve,
    ChatAction::Revise,
    ChatAction::Merge,
    ChatAction::RequestChanges,
    ChatAction::Retry,
    ChatAction::Cancel,
];

impl ChatAction {
    /// The short code a button carries.
    pub fn code(self) -> &'static str {
        match self {
            ChatAction::Approve => "ap",
            ChatAction::Revise => "rv",
            ChatAction::Merge => "mg",
            ChatAction::RequestChanges => "rc",
            ChatAction::Retry => "rt",
            ChatAction::Cancel => "cn",
        }
    }

    /// The button's label.
    pub fn label(self) -> &'static str {
        match self {
            ChatAction::Approve => "Approve",
            ChatAction::Revise => "Ask for revision",
            ChatAction::Merge => "Mark merged",
            ChatAction::RequestChanges => "Request changes",
            ChatAction::Retry => "Retry",
            ChatAction::Cancel => "Cancel",
        }
    }

    /// What the chat message says was done ("Approved by Ann via Telegram").
    pub fn done(self) -> &'static str {
        match self {
            ChatAction::Approve => "Approved",
            ChatAction::Revise => "Sent back for revision",
            ChatAction::Merge => "Marked merged",
            ChatAction::RequestChanges => "Changes requested",
            ChatAction::Retry => "Retried",
            ChatAction::Cancel => "Cancelled",
        }
    }

    /// The action needs the reviewer's words (asked for with a reply or a form).
    pub fn needs_text(self) -> bool {
        matches!(self, ChatAction::Revise | ChatAction::RequestChanges)
    }

    /// The status the action moves the task to.
    pub fn target(self) -> AgentStatus {
        match self {
            ChatAction::Approve => AgentStatus::SpecApproved,
            ChatAction::Revise => AgentStatus::Speccing,
            ChatAction::Merge => AgentStatus::Merged,
            ChatAction::RequestChanges => AgentStatus::ChangesRequested,
            ChatAction::Retry => AgentStatus::Queued,
            ChatAction::Cancel => AgentStatus::Cancelled,
        }
    }

    /// The status the task must have for the button to act: a button pressed after the task
    /// moved on changes nothing.
    pub fn from_status(self) -> AgentStatus {
        match self {
            ChatAction::Approve | ChatAction::Revise => AgentStatus::SpecReady,
            ChatAction::Merge | ChatAction::RequestChanges => AgentStatus::PrReady,
            ChatAction::Retry | ChatAction::Cancel => AgentStatus::Failed,
        }
    }

    /// The buttons a notification of `event` carries.
    pub fn for_event(event: NotifyEvent) -> &'static [ChatAction] {
        match event {
            NotifyEvent::SpecReady => &[ChatAction::Approve, ChatAction::Revise],
            NotifyEvent::PrReady | NotifyEvent::ChecksFailing => {
                &[ChatAction::Merge, ChatAction::RequestChanges]
            }
            NotifyEvent::Failed => &[ChatAction::Retry, ChatAction::Cancel],
            _ => &[],
        }
    }

    /// Parses [`ChatAction::code`].
    pub fn parse(code: &str) -> Option<ChatAction> {
        ALL.into_iter().find(|a| a.code() == code)
    }

    /// The data a button carries: `<code>:<task id>:<event id>`, the event being the one the
    /// notification announced: a press after a later transition of the task changes nothing
    /// (an old "Approve" never approves a newer spec).
    pub fn button_data(self, task_id: &str, event_id: i64) -> String {
        format!("{}:{task_id}:{event_id}", self.code())
    }

    /// Reads [`ChatAction::button_data`].
    pub fn parse_button(data: &str) -> Option<(ChatAction, &str, i64)> {
        let (code, rest) = data.split_once(':')?;
        let (task, event) = rest.split_once(':')?;
        let valid =
            !task.is_empty() && task.len() <= 40 && task.chars().all(|c| c.is_ascii_alphanumeric());
        let event: i64 = event.parse().ok().filter(|e| *e > 0)?;
        Some((ChatAction::parse(code)?, task, event)).filter(|_| valid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_button_names_its_action_and_task_within_telegrams_64_bytes() {
        let id = "0193f5c17b2a7c3d9e4fa1b2c3d4e5f6";
        for a in ALL {
            let data = a.button_data(id, i64::MAX);
            assert!(data.len() <= 64, "{data}");
            assert_eq!(ChatAction::parse_button(&data), Some((a, id, i64::MAX)));
        }
        assert_eq!(ChatAction::parse_button("zz:abc:1"), None);
        assert_eq!(ChatAction::parse_button("ap::1"), None);
        assert_eq!(ChatAction::parse_button("ap:a b:1"), None);
        assert_eq!(ChatAction::parse_button("ap:abc"), None);
        assert_eq!(ChatAction::parse_button("ap:abc:0"), None);
        assert_eq!(ChatAction::parse_button("ap"), None);
    }

    #[test]
    fn each_button_starts_where_its_event_leaves_the_task_and_the_table_allows_it() {
        for event in [
            NotifyEvent::SpecReady,
            NotifyEvent::PrReady,
            NotifyEvent::Failed,
        ] {
            let actions = ChatAction::for_event(event);
            assert_eq!(actions.len(), 2);
            for a in actions {
                let allowed = crate::allowed_targets(a.from_status(), crate::ActorKind::Human);
                assert!(allowed.contains(&a.target()), "{a:?}");
            }
        }
        assert!(ChatAction::for_event(NotifyEvent::Merged).is_empty());
        assert_eq!(Via::parse(Via::Slack.as_str()), Some(Via::Slack));
    }
}
