%% The apply step (functions: prelude.erl, load.erl, migrate.erl, apply.erl),
%% with the bindings Load, Remove, Force, Owner, Go and Migrate, as apply_now
%% takes them.
apply_now(Load, Remove, Force, Owner, Go, Migrate).
