%% The apply step (after prelude.erl and apply.erl).
ApplyNow().
