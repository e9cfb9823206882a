"""An offline Bicep checker: tree-sitter-bicep's syntax tree read against Azure's own type files.

`python -m scripts.bicep_check [folder]` checks every .bicep file under the folder (default infra/)
and prints one `file:line: rule: reason` per finding. Exit 0 clean, 1 findings, 2 set-up error
(type definitions or folder missing). docs/DEPLOY.md, "What is checked offline", lists the rules.
"""
