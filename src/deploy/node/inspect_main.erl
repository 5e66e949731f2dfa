%% The inspect step (after prelude.erl and inspect.erl's funs): the lock,
%% then every module's state.
case Lock of
    none -> {ok, [Inspect(X) || X <- Mods]};
    _ ->
        case Take(Lock, 3) of
            ok -> {ok, [Inspect(X) || X <- Mods]};
            Locked -> Locked
        end
end.
