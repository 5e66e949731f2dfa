%% A script's funs (see src/dist/script.rs), after prelude.erl and
%% load.erl, for the inspect step (inspect_main.erl) and the flight
%% (flight_main.erl): taking the node's deploy lock (Take; Hold is its
%% holder), and what the node runs of a module (Inspect). Read-only but
%% for soft purges, which only drop old code nobody runs.
%%
%% Take({Token, Owner, Info, LeaseMs}, Tries) -> ok | {locked, Info}
%%   Owner is this tool's node, Info what a refused run is told about the
%%   holder.
%% Inspect({Module, Want, Known}, Check, All) -> {Module, State, Stuck, Copy}
%%   Want is the MD5 the module is to run, or absent; Known the MD5s of it
%%   the tool has already; All true to treat every module as changing;
%%   Check false to skip the old-code check (a read-back after a load).
%%   State = {loaded, Md5} | {on_disk, Md5} | absent,
%%   Stuck = [{Module, Pid, RegisteredName | undefined}],
%%   Copy  = the binary on the code path whose MD5 is State's, or none
%%           (only for modules about to change whose MD5 is not Known).
%% The lock's holder also keeps what a deploy to several nodes prepared
%% in its inspect step (Staged), until that run's apply step collects it.
Hold = fun Hold(Token, Owner, Info, Lease, Staged) ->
    receive
        {release, Token} -> ok;
        {nodedown, Owner} -> ok;
        {who, From, Ref} -> From ! {Ref, Owner, Info}, Hold(Token, Owner, Info, Lease, Staged);
        {stage, Token, S} -> Hold(Token, Owner, Info, Lease, S);
        {collect, Token, From, Ref} -> From ! {Ref, Staged}, Hold(Token, Owner, Info, Lease, none);
        {collect, _, From, Ref} -> From ! {Ref, none}, Hold(Token, Owner, Info, Lease, Staged)
    after Lease -> ok
    end
end,
Who = fun() ->
    case whereis(hotswap_deploy_lock) of
        undefined -> none;
        Holder ->
            Ref = monitor(process, Holder),
            Holder ! {who, self(), Ref},
            receive
                {Ref, O, I} -> demonitor(Ref, [flush]), {Holder, O, I};
                {'DOWN', Ref, _, _, _} -> none
            after 2000 -> demonitor(Ref, [flush]), {Holder, unknown, []}
            end
    end
end,
Take = fun Take(_, 0) -> {locked, []};
           Take({Token, Owner, Info, Lease} = L, Tries) ->
    Parent = self(),
    Ref = make_ref(),
    spawn(fun() ->
        case catch register(hotswap_deploy_lock, self()) of
            true ->
                monitor_node(Owner, true),
                Parent ! {Ref, ok},
                Hold(Token, Owner, Info, Lease, none);
            _ -> Parent ! {Ref, taken}
        end
    end),
    receive
        {Ref, ok} -> ok;
        {Ref, taken} ->
            case Who() of
                none -> Take(L, Tries - 1);
                {Holder, Owner, _} ->
                    %% Our own previous run, releasing: wait for it to go.
                    M = monitor(process, Holder),
                    receive {'DOWN', M, _, _, _} -> Take(L, Tries - 1)
                    after 5000 -> demonitor(M, [flush]), {locked, Info}
                    end;
                {_, _, Held} -> {locked, Held}
            end
    end
end,
%% Where each module not loaded would load from: every folder of the code
%% path listed once (first one wins, as the code server does), not one
%% search of the whole path per module. File name -> folder: joined only
%% for the modules asked about (a release lists thousands of files).
OnPath = fun() ->
    maps:from_list([{F, D} || D <- lists:reverse(code:get_path()),
                              {ok, Fs} <- [erl_prim_loader:list_dir(D)],
                              F <- Fs])
end,
%% Listed at most once per call (the process, and its memo, end with it).
Paths = fun() ->
    case get(hotswap_paths) of
        undefined -> P = OnPath(), put(hotswap_paths, P), P;
        P -> P
    end
end,
OnDisk = fun(M) ->
    File = atom_to_list(M) ++ ".beam",
    case maps:find(File, Paths()) of
        {ok, Dir} ->
            Path = filename:join(Dir, File),
            case beam_lib:md5(Path) of
                {ok, {M, Md5}} -> {Md5, Path};
                _ -> none
            end;
        error -> none
    end
end,
%% erlang:module_loaded/1, not code:is_loaded/1: on OTP 25 the latter is
%% a call to the code server, which may be busy purging the previous
%% run's old code (a --verify read-back would wait for all of it).
StateOf = fun(M) ->
    case erlang:module_loaded(M) of
        true -> {loaded, erlang:get_module_info(M, md5)};
        false ->
            case OnDisk(M) of
                {Md5, _} -> {on_disk, Md5};
                none -> absent
            end
    end
end,
Copy = fun(_, absent, _) -> none;
          (M, {_, Md5}, Known) ->
    case not lists:member(Md5, Known) andalso OnDisk(M) of
        {Md5, Path} ->
            case erl_prim_loader:get_file(Path) of
                {ok, Bin, _} -> Bin;
                _ -> none
            end;
        _ -> none
    end
end,
Stuck = fun(M) ->
    case erlang:check_old_code(M) andalso not code:soft_purge(M) of
        true -> InOld(M);
        false -> []
    end
end,
%% Called through lists:map/2, not from a list comprehension in the script:
%% erl_eval would merge the script's every binding at each element (a
%% fifth of the step's time for a release's worth of modules).
Inspect = fun({M, Want, Known}, Check, All) ->
    S = StateOf(M),
    Now = case S of {_, Md5} -> Md5; absent -> absent end,
    case {Check, All orelse Now =/= Want} of
        {true, true} -> {M, S, Stuck(M), Copy(M, S, Known)};
        %% Not changing: its old code (a previous run's) is still let go
        %% of, and whoever keeps it named.
        {true, false} -> {M, S, Stuck(M), none};
        {false, _} -> {M, S, [], none}
    end
end,
