"""Word-substitution attacks: synonym candidates, the gradient-guided attack, black-box attacks
(TextFooler-style, PWWS, Genetic), string-level verification and reports."""
