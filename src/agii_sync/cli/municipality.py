"""The municipality's commands and the status back-flow: status-update, list, pull-status."""
