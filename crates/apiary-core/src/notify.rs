//! Notification messages (DESIGN §6), rendered once per channel kind: Telegram MarkdownV2
//! (every reserved character escaped, link labels included; `)` and `\` escaped inside link
//! URLs) and plain text for email and the log. A link that does not exist is left out.

use crate::state::NotifyEvent;

/// What a notification says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub event: NotifyEvent,
    pub task_title: String,
    pub project_name: String,
    /// The task in Apiary's UI.
    pub task_url: String,
    pub spec_url: Option<String>,
    pub pr_url: Option<String>,
    pub code_url: Option<String>,
    pub site_url: Option<String>,
    /// For `FAILED`.
    pub error: Option<String>,
}

impl NotifyEvent {
    /// The event's name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            NotifyEvent::SpecReady => "SPEC_READY",
            NotifyEvent::PrReady => "PR_READY",
            NotifyEvent::Failed => "FAILED",
            NotifyEvent::Merged => "MERGED",
            NotifyEvent::Queued => "QUEUED",
            NotifyEvent::Provisioning => "PROVISIONING",
            NotifyEvent::ChecksFailing => "CHECKS_FAILING",
        }
    }

    /// A short human headline.
    pub fn headline(self) -> &'static str {
        match self {
            NotifyEvent::SpecReady => "Spec ready for review",
            NotifyEvent::PrReady => "Pull request ready for review",
            NotifyEvent::Failed => "Agent failed",
            NotifyEvent::Merged => "Merged",
            NotifyEvent::Queued => "Queued for a box",
            NotifyEvent::Provisioning => "Box starting",
            NotifyEvent::ChecksFailing => "Checks still failing",
        }
    }

    /// Events sent only when chatty events are on.
    pub fn is_chatty(self) -> bool {
        matches!(self, NotifyEvent::Queued | NotifyEvent::Provisioning)
    }
}

/// Characters Telegram's MarkdownV2 reserves outside entities.
pub const MD2_RESERVED: &[char] = &[
    '_', '*', '[', ']', '(', ')', '~', '`', '>', '#', '+', '-', '=', '|', '{', '}', '.', '!', '\\',
];

/// Escapes text for MarkdownV2 (also right for link labels).
pub fn escape_md2(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if MD2_RESERVED.contains(&c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Escapes a URL inside `(...)` of a MarkdownV2 link: only `)` and `\`.
pub fn escape_md2_url(url: &str) -> String {
    let mut out = String::with_capacity(url.len());
    for c in url.chars() {
        if c == ')' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

impl Message {
    /// The links that exist, labelled, in a fixed order.
    pub fn links(&self) -> Vec<(&'static str, &str)> {
        [
            ("Task", Some(self.task_url.as_str())),
            ("Spec", self.spec_url.as_deref()),
            ("Pull request", self.pr_url.as_deref()),
            ("Code", self.code_url.as_deref()),
            ("Site", self.site_url.as_deref()),
        ]
        .into_iter()
        .filter_map(|(label, url)| url.filter(|u| !u.trim().is_empty()).map(|u| (label, u)))
        .collect()
    }

    /// Telegram MarkdownV2.
    pub fn markdown_v2(&self) -> String {
        let mut out = format!(
            "*{}*\n{} · {}",
            escape_md2(self.event.headline()),
            escape_md2(&self.task_title),
            escape_md2(&self.project_name)
        );
        if let Some(e) = self.error.as_deref().filter(|e| !e.is_empty()) {
            out.push_str(&format!("\nError: {}", escape_md2(e)));
        }
        let links: Vec<String> = self
            .links()
            .into_iter()
            .map(|(label, url)| format!("[{}]({})", escape_md2(label), escape_md2_url(url)))
            .collect();
        if !links.is_empty() {
            out.push('\n');
            out.push_str(&links.join(" · "));
        }
        out
    }

    /// Slack `mrkdwn` (`&`, `<` and `>` escaped; links as `<url|label>`).
    pub fn slack_mrkdwn(&self) -> String {
        let mut out = format!(
            "*{}*\n{} · {}",
            escape_mrkdwn(self.event.headline()),
            escape_mrkdwn(&self.task_title),
            escape_mrkdwn(&self.project_name)
        );
        if let Some(e) = self.error.as_deref().filter(|e| !e.is_empty()) {
            out.push_str(&format!("\nError: {}", escape_mrkdwn(e)));
        }
        let links: Vec<String> = self
            .links()
            .into_iter()
            .map(|(label, url)| format!("<{}|{label}>", escape_mrkdwn(url).replace('|', "%7C")))
            .collect();
        if !links.is_empty() {
            out.push('\n');
            out.push_str(&links.join(" · "));
        }
        out
    }

    /// Plain text (email body, log line).
    pub fn plain(&self) -> String {
        let mut out = format!(
            "{}: {} ({})",
            self.event.headline(),
            self.task_title,
            self.project_name
        );
        if let Some(e) = self.error.as_deref().filter(|e| !e.is_empty()) {
            out.push_str(&format!("\nError: {e}"));
        }
        for (label, url) in self.links() {
            out.push_str(&format!("\n{label}: {url}"));
        }
        out
    }

    /// An email subject line.
    pub fn subject(&self) -> String {
        format!("[Apiary] {}: {}", self.event.headline(), self.task_title)
    }
}

/// Escapes text for Slack's `mrkdwn`: the three characters Slack's formatting reserves.
pub fn escape_mrkdwn(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Checks MarkdownV2 the way Telegram parses it: outside entities every reserved character
/// must be escaped; inside a link URL only `)` and `\` must be. Returns the offending byte
/// offset. (Used by tests and the fake Telegram server; bold `*…*` and links are the only
/// entities Apiary writes.)
pub fn check_md2(text: &str) -> Result<(), usize> {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let mut i = 0;
    let mut in_bold = false;
    while i < chars.len() {
        let (at, c) = chars[i];
        match c {
            '\\' => {
                // An escape must be followed by a character.
                if i + 1 >= chars.len() {
                    return Err(at);
                }
                i += 2;
                continue;
            }
            '*' => in_bold = !in_bold,
            '[' => {
                // A link: label up to an unescaped ']', then '(' url ')'.
                let mut j = i + 1;
                while j < chars.len() && chars[j].1 != ']' {
                    if chars[j].1 == '\\' {
                        j += 1;
                    } else if MD2_RESERVED.contains(&chars[j].1) {
                        return Err(chars[j].0);
                    }
                    j += 1;
                }
                if j + 1 >= chars.len() || chars[j + 1].1 != '(' {
                    return Err(at);
                }
                let mut k = j + 2;
                while k < chars.len() && chars[k].1 != ')' {
                    if chars[k].1 == '\\' {
                        k += 1;
                    }
                    k += 1;
                }
                if k >= chars.len() {
                    return Err(at);
                }
                i = k + 1;
                continue;
            }
            c if MD2_RESERVED.contains(&c) => return Err(at),
            _ => {}
        }
        i += 1;
    }
    if in_bold {
        return Err(text.len());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn msg(title: &str) -> Message {
        Message {
            event: NotifyEvent::SpecReady,
            task_title: title.into(),
            project_name: "web-site_v2".into(),
            task_url: "http://127.0.0.1:7878/tasks/t1".into(),
            spec_url: Some("http://127.0.0.1:7878/tasks/t1#spec".into()),
            pr_url: None,
            code_url: Some("http://x.test/a_(b)".into()),
            site_url: Some("".into()),
            error: None,
        }
    }

    #[test]
    fn reserved_characters_are_escaped_everywhere_and_missing_links_are_left_out() {
        let m = msg("Fix (parens) and _underscores_ in v1.2!");
        let md = m.markdown_v2();
        assert_eq!(check_md2(&md), Ok(()), "{md}");
        assert!(
            md.contains("Fix \\(parens\\) and \\_underscores\\_ in v1\\.2\\!"),
            "{md}"
        );
        assert!(md.contains("[Code](http://x.test/a_(b\\))"), "{md}");
        assert!(!md.contains("Pull request"), "no PR link: {md}");
        assert!(!md.contains("Site"), "an empty link is left out: {md}");
        let plain = m.plain();
        assert!(plain.contains("Fix (parens) and _underscores_ in v1.2!"));
        assert!(!plain.contains('\\'));
    }

    #[test]
    fn failed_carries_the_error() {
        let mut m = msg("T");
        m.event = NotifyEvent::Failed;
        m.error = Some("box vanished (pid 12)".into());
        assert!(m.markdown_v2().contains("Error: box vanished \\(pid 12\\)"));
        assert!(m.plain().contains("Error: box vanished (pid 12)"));
        assert_eq!(check_md2(&m.markdown_v2()), Ok(()));
    }

    #[test]
    fn the_checker_catches_an_unescaped_character() {
        assert!(check_md2("a.b").is_err());
        assert!(check_md2("[a](b)").is_ok());
        assert!(check_md2("[a.](b)").is_err());
        assert!(check_md2("*bold").is_err());
    }

    #[test]
    fn slack_text_escapes_what_slack_reserves_and_links_keep_their_label() {
        let m = msg("a <b> & c|d");
        let text = m.slack_mrkdwn();
        assert!(text.contains("a &lt;b&gt; &amp; c|d"), "{text}");
        assert!(
            text.contains("<http://127.0.0.1:7878/tasks/t1|Task>"),
            "{text}"
        );
        assert!(!text.contains("<b>"));
    }

    proptest! {
        #[test]
        fn any_text_escapes_to_valid_markdown_v2(text in ".{0,80}", url in "[a-z:/._()\\\\-]{0,40}") {
            let escaped = escape_md2(&text);
            prop_assert_eq!(check_md2(&escaped), Ok(()));
            let link = format!("[{}]({})", escape_md2(&text), escape_md2_url(&url));
            prop_assert_eq!(check_md2(&link), Ok(()));
            let mut m = msg(&text);
            m.error = Some(text.clone());
            m.pr_url = Some(format!("http://x.test/{url}"));
            prop_assert_eq!(check_md2(&m.markdown_v2()), Ok(()));
        }
    }
}
