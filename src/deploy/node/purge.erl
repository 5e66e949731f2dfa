%% Letting go of old code (functions, after prelude.erl; see
%% src/peer/script.rs), for the inspect step, the apply step and the
%% flight. Purging a module's old code kills the processes that run it, as
%% OTP's purge does; it also dooms, silently and later, every process that
%% keeps a fun made by that code: calling the fun then raises badfun, and
%% neither erlang:check_process_code/3 nor code:soft_purge/1 sees funs. So
%% old code goes only when a load needs its slot, and only after a look at
%% who would die; a run never purges on its own schedule code that made
%% funs (apply.erl's purge_later).
%%
%% with_funs(Modules) -> [Module]: those loaded whose code makes funs (has
%% '-Name/Arity-fun-N-' functions). Old code of the others keeps no
%% process by a fun. Compiled calls only: no interpreted step per module.
with_funs(Ms) ->
    Loaded = lists:filter(fun erlang:module_loaded/1, Ms),
    Fs = lists:zipwith(fun erlang:get_module_info/2, Loaded, repeat(functions, Loaded)),
    Found = lists:zipwith(fun binary:match/2, lists:map(fun erlang:term_to_binary/1, Fs),
                          repeat(<<"-fun-">>, Fs)),
    column(2, proplists:delete(nomatch, lists:zip(Found, Loaded))).
%% let_go(Modules, Changing) -> [{Module, Pid, Name, Why}]: of Modules,
%% those with old code that Changing (the modules about to load or go)
%% needs gone lose it if nobody would die of it; the others keep it, and
%% if anyone would die of any of them, all keep it (the run is refused:
%% nothing changes). Said of each kept: who runs it (running), and, for a
%% module about to change, who keeps a fun it made (dying/1).
let_go(Ms, Changing) ->
    Old = lists:filter(fun erlang:check_old_code/1, Ms),
    Needed = [M || M <- Old, lists:member(M, Changing)],
    Kept = Old -- Needed,
    Held = dying(Needed),
    Stay = case Held of
        [] -> [M || M <- Needed, not code:soft_purge(M)];
        _ -> Needed
    end,
    Running = lists:append([in_old(M) || M <- Stay ++ Kept]),
    [{M, P, N, running} || {M, P, N} <- Running] ++ Held.
%% dying(Old) -> [{Module, Pid, Name, Why}]: the processes that keep a fun
%% made by the old code of one of Old, Why = {fun_in, Where}:
%%   dictionary, messages: in its process dictionary or message queue;
%%   state: in the state of a process in a sys loop (one whose current
%%     module exports system_continue/3: gen_server, gen_statem, gen_event
%%     and the like), as sys:get_state gives it;
%%   stack: on the stack of another process, where a fun of the module
%%     cannot be told from one of its current code: named, not passed over.
%% Or Why = unchecked: a process in a sys loop that did not give its state
%% within a second, or one whose stack is too large for the VM to print
%% whole (its backtrace is cut, "..."), so that a fun may hide in it.
%% A fun carries the MD5 of the code that made it (as its new_uniq), so
%% one whose MD5 is not the current code's is the old code's. Every process
%% is looked at by compiled calls (process_info, term_to_binary,
%% binary:match), one part of them per scheduler in parallel; interpreted
%% code runs only for those that mention one of the modules or whose
%% backtrace is cut.
dying([]) -> [];
dying(Old) ->
    Ps = lists:delete(self(), processes()),
    Md5s = [{M, case erlang:module_loaded(M) of true -> erlang:get_module_info(M, md5); false -> none end}
            || M <- Old],
    Shown = [<<"#Fun<", (atom_to_binary(M, utf8))/binary, ".">> || M <- Old],
    Pattern = binary:compile_pattern([<<"...">> | Shown ++ [etf_atom(M) || M <- Old]]),
    %% One part of the processes per scheduler, looked at in parallel.
    Scans = [spawn_monitor(fun() -> exit({seen, seen(Part, Pattern)}) end)
             || Part <- parts(Ps, erlang:system_info(schedulers_online))],
    Hits = lists:append([receive {'DOWN', R, process, W, Why} -> scanned(Why) end || {W, R} <- Scans]),
    {Sure, Ask} = lists:unzip([held_by(P, I, Md5s) || {P, I} <- Hits]),
    lists:append(Sure) ++ in_states(lists:append(Ask), Md5s).
%% seen(Pids, Pattern) -> [{Pid, Info}]: those whose dictionary, message
%% queue or backtrace (Info, as process_info gives them) match Pattern.
seen(Ps, Pattern) ->
    Seen = lists:zipwith(fun erlang:process_info/2, Ps, repeat([dictionary, messages, backtrace], Ps)),
    Etf = lists:zipwith(fun erlang:term_to_binary/2, Seen, repeat([{minor_version, 2}], Seen)),
    column(2, proplists:delete(nomatch, lists:zip(lists:zipwith(fun binary:match/2, Etf, repeat(Pattern, Etf)),
                                                  lists:zip(Ps, Seen)))).
%% scanned(ExitReason) -> a scan's hits; a scan that failed fails the look
%% (and so the step: nothing is purged).
scanned({seen, Hits}) -> Hits;
scanned(Why) -> error({look_failed, Why}).
%% parts(List, N) -> List in at most N parts of nearly equal length.
parts(L, N) -> parts_of(L, max(1, (length(L) + N - 1) div N)).
parts_of([], _) -> [];
parts_of(L, Size) when length(L) =< Size -> [L];
parts_of(L, Size) ->
    {Part, Rest} = lists:split(Size, L),
    [Part | parts_of(Rest, Size)].
%% held_by(Pid, Info, Md5s) -> {Holders, Ask}: what process_info shows of
%% one process; Ask = [{Pid, Modules}] when it is in a sys loop and its
%% stack shows a fun of Modules, or is cut (then all of them), to be asked
%% for its state.
held_by(P, [{dictionary, D}, {messages, Q}, {backtrace, Bt}], Md5s) ->
    Name = name_of(P),
    OnStack = [M || {M, _} <- Md5s,
                    binary:match(Bt, <<"#Fun<", (atom_to_binary(M, utf8))/binary, ".">>) =/= nomatch],
    Cut = binary:match(Bt, <<"...">>) =/= nomatch,
    Doubt = case Cut of true -> column(1, Md5s); false -> OnStack end,
    Found = [{M, P, Name, {fun_in, dictionary}} || M <- old_funs(D, Md5s)]
        ++ [{M, P, Name, {fun_in, messages}} || M <- old_funs(Q, Md5s)],
    case {Doubt, sys_loop(Bt)} of
        {[], _} -> {Found, []};
        {_, true} -> {Found, [{P, Doubt}]};
        {_, false} when Cut -> {Found ++ [{M, P, Name, unchecked} || M <- Doubt], []};
        {_, false} -> {Found ++ [{M, P, Name, {fun_in, stack}} || M <- OnStack], []}
    end;
held_by(_, _, _) -> {[], []}.
%% sys_loop(Backtrace): whether the process is in a module that exports
%% system_continue/3 (a sys loop, which answers system messages), as the
%% backtrace's first line names it: "Program counter: 0x… (M:F/A + N)".
sys_loop(Bt) ->
    case binary:split(hd(binary:split(Bt, <<"\n">>)), [<<"(">>, <<":">>], [global]) of
        [_, _, M | _] ->
            try erlang:function_exported(binary_to_existing_atom(M, utf8), system_continue, 3)
            catch error:badarg -> false
            end;
        _ -> false
    end.
%% in_states([{Pid, Modules}], Md5s) -> [{Module, Pid, Name, Why}]: each
%% process asked for its state at once, a second for all of them.
in_states([], _) -> [];
in_states(Asked, Md5s) ->
    Ps = column(1, Asked),
    Ids = lists:zipwith3(fun gen:send_request/3, Ps, repeat(system, Ps), repeat(get_state, Ps)),
    Deadline = {abs, erlang:monotonic_time(millisecond) + 1000},
    Rs = lists:zipwith(fun gen:receive_response/2, Ids, repeat(Deadline, Ids)),
    lists:append([in_state(P, Ms, R, Md5s) || {{P, Ms}, R} <- lists:zip(Asked, Rs)]).
in_state(P, Ms, {reply, {error, {callback_failed, _}}}, _) -> [{M, P, name_of(P), unchecked} || M <- Ms];
in_state(P, _, {reply, State}, Md5s) ->
    [{M, P, name_of(P), {fun_in, state}} || M <- old_funs(State, Md5s)];
in_state(_, _, {error, _}, _) -> [];
in_state(P, Ms, _, _) -> [{M, P, name_of(P), unchecked} || M <- Ms].
%% old_funs(Term, Md5s) -> [Module]: the modules of Md5s ([{Module, Md5 |
%% none}]) of which Term holds a fun made by other code than the current.
%% In the external format a local fun is 112, Size:32, Arity:8, Uniq:16
%% bytes (the MD5), Index:32, NumFree:32, then its module's atom: each
%% place the atom is written is looked at for a fun that ends there.
old_funs(T, Md5s) ->
    B = term_to_binary(T, [{minor_version, 2}]),
    lists:usort([M || {M, Md5} <- Md5s, {At, _} <- binary:matches(B, etf_atom(M)), At >= 30,
                      binary:at(B, At - 30) =:= 112, binary:part(B, At - 24, 16) =/= Md5]).
%% etf_atom(Module): the atom as term_to_binary writes it with
%% {minor_version, 2}: UTF-8, one byte of length up to 255 bytes.
etf_atom(M) ->
    B = atom_to_binary(M, utf8),
    case byte_size(B) < 256 of
        true -> <<119, (byte_size(B)), B/binary>>;
        false -> <<118, (byte_size(B)):16, B/binary>>
    end.
