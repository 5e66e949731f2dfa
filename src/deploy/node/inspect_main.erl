%% The inspect step (after prelude.erl, inspect.erl's funs and load.erl):
%% the lock, then every module's state. In a deploy to several nodes whose
%% states the tool believes it knows, it also prepares the changes that
%% belief implies, if the node runs exactly what was believed; the lock's
%% holder keeps them for the apply step (load.erl's Collect). Nothing
%% changes on any node before all of them have answered.
%%
%% More bindings:
%%   Believed = none | [State], one per entry of Mods, as states are reported.
%%   Stage    = none | [{Module, File, Binary}]: what to prepare.
%% Value: as inspect.erl says; with Stage, {ok, Found, Staged} where
%%   Staged = staged | unbelieved | {error, [{Module, Reason}]}.
Staging = fun(Found) ->
    case [S || {_, S, _, _} <- Found] =:= Believed of
        false -> unbelieved;
        true ->
            case Prepare(Stage) of
                {ok, Prepared} ->
                    catch hotswap_deploy_lock ! {stage, element(1, Lock), {ok, Prepared}},
                    staged;
                Refused -> Refused
            end
    end
end,
Report = fun(Found) ->
    case Stage of
        none -> {ok, Found};
        _ -> {ok, Found, Staging(Found)}
    end
end,
case Lock of
    none -> {ok, lists:map(Inspect, Mods)};
    _ ->
        case Take(Lock, 3) of
            ok -> Report(lists:map(Inspect, Mods));
            Locked -> Locked
        end
end.
