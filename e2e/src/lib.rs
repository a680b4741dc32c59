//! Two-organisation full-stack tests and the one-command demo (see the whole-story issue).
