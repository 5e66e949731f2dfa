%% The tool's word, Word = go | abort, to the step Key = {Token, Step} of
%% the run holding the node's lock (apply.erl's AwaitGo waits for it), given
%% to the lock's holder once it has acknowledged it. A flight registers its
%% holder itself, so when the word comes the holder may not be there yet,
%% or a previous run's may still be, which does not acknowledge it: tries
%% every millisecond, Tries times at most.
Say = fun Say(0) -> lost;
          Say(N) ->
    Ref = make_ref(),
    catch hotswap_deploy_lock ! {say, Key, Word, self(), Ref},
    receive {Ref, taken} -> taken after 1 -> Say(N - 1) end
end,
Say(Tries).
