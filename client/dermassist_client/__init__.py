"""DermAssist thin client SDK."""
